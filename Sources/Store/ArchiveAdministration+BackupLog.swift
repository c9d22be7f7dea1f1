import Foundation
import Postgres
import Retention

/// One archive file as `lethe archive list` shows it (a row of `lethe.backup_log`).
public struct BackupLogEntry: Sendable, Equatable, Codable {
    public var id: Int64
    public var accountID: String
    public var fileName: String
    public var createdAt: Date
    public var totalSize: Int64?
    public var numberOfFiles: Int?
    public var records: Int64?
    public var status: String
    /// Sites holding the file.
    public var sitesHolding: Int
    public var sitesConfigured: Int
    public var error: String?
}

/// The job an approval approved, as it stands after the approval.
public struct ApprovedArchiveJob: Sendable, Equatable {
    public var job: UUID
    public var accountID: String
    public var state: String
    /// The job's archive files (all approved with it).
    public var files: Int
    /// The account requires confirmed downloads and a file of the job has none yet.
    public var waitsForDownload: Bool
}

/// Every column `lethe archive show` prints of one archive file and its job; a column
/// read as optional shows `-` when null.
public struct ArchiveFileDetail: Sendable, Equatable {
    public var id: Int64
    public var accountID: String
    public var job: String?
    public var part: Int
    public var fileName: String?
    public var status: String?
    public var totalSize: Int64?
    public var numberOfFiles: Int?
    public var records: Int64?
    public var sha256: String?
    /// The sites holding the file, comma-separated.
    public var sites: String?
    public var sitesConfigured: Int
    public var error: String?
    public var attempts: Int
    public var jobState: String?
    public var createdAt: Date?
    public var packedAt: Date?
    public var uploadedAt: Date?
    public var downloadedAt: Date?
    public var deletedAt: Date?
    public var deleteAt: Date?
    public var approvedAt: Date?
    public var approvedBy: String?
    public var dueAt: Date?
    public var note: String?
    /// The job's cutoffs and counts as JSON text.
    public var cutoffs: String?
    public var counts: String?
}

/// One site of an account and the upload of one file there (`status` is `not yet` before any).
public struct ArchiveUploadStatus: Sendable, Equatable {
    public var siteID: Int64
    public var url: String
    public var removed: Bool
    public var status: String
    public var size: Int64?
    public var attempts: Int?
    public var verifiedAt: Date?
    public var error: String?
}

/// The backup log and what operators do with its files: approve, confirm, retry, start a
/// job. Changes call the SQL functions an application or psql would call; none needs the
/// master key.
extension ArchiveAdministration {
    /// Archive files newest first, of one account and one status (`failed`: either failure) or all.
    public func backupLog(
        account: String?, status: String?, limit: Int, on connection: Connection
    ) throws -> [BackupLogEntry] {
        try connection.query(
            """
            SELECT id, account_id, file_name, created_at, total_size, number_of_files, records, status,
                   cardinality(sites), sites_configured, error
            FROM lethe.backup_log
            WHERE ($1::text IS NULL OR account_id = $1)
              AND ($2::text IS NULL OR status = $2
                   OR ($2 = 'failed' AND status IN ('upload_failed', 'delete_failed')))
            ORDER BY created_at DESC, id DESC LIMIT $3
            """, [account, status, limit]
        ).map { row in
            BackupLogEntry(
                id: try row.decode(at: 0), accountID: try row.decode(at: 1), fileName: try row.decode(at: 2),
                createdAt: try row.decode(at: 3), totalSize: try row.decode(at: 4),
                numberOfFiles: try row.decode(at: 5),
                records: try row.decode(at: 6), status: try row.decode(at: 7), sitesHolding: try row.decode(at: 8),
                sitesConfigured: try row.decode(at: 9), error: try row.decode(at: 10))
        }
    }

    /// Approves deleting the data of the file's whole job, and reads the job as it then
    /// stands, in one transaction.
    public func approveDeletion(file id: Int64, on connection: Connection) throws -> ApprovedArchiveJob {
        try connection.withTransaction { connection in
            let job = try connection.query("SELECT lethe.approve_archive_deletion($1)", [id])[0]
                .decode(UUID.self, at: 0)
            let row = try connection.query(
                """
                SELECT j.account_id, j.state,
                       (SELECT count(*) FROM lethe.archive_files f
                        WHERE f.job_id = j.job_id AND f.status <> \(StateSQL.literal(ArchiveFileState.superseded))),
                       coalesce(s.require_download, false)
                       AND EXISTS (SELECT 1 FROM lethe.archive_files f
                                   WHERE f.job_id = j.job_id AND f.downloaded_at IS NULL
                                     AND f.status <> \(StateSQL.literal(ArchiveFileState.superseded)))
                FROM lethe.archive_jobs j LEFT JOIN lethe.archive_settings s ON s.account_id = j.account_id
                WHERE j.job_id = $1
                """, [job])[0]
            let (account, state, files, waits) = try row.decode((String, String, Int, Bool).self)
            return ApprovedArchiveJob(
                job: job, accountID: account, state: state, files: files, waitsForDownload: waits)
        }
    }

    /// Records that the backup sites pulled the file; returns its status.
    public func confirmDownload(file id: Int64, on connection: Connection) throws -> String {
        try connection.query("SELECT lethe.confirm_archive_download($1)", [id])[0].decode(String.self, at: 0)
    }

    /// Retries a failed file (with its job's other failed files); returns its status.
    public func retry(file id: Int64, on connection: Connection) throws -> String {
        try connection.query("SELECT lethe.retry_archive($1)", [id])[0].decode(String.self, at: 0)
    }

    /// Starts an archive job for the account now; returns the job's id.
    public func startJob(account: String, on connection: Connection) throws -> UUID {
        try connection.query("SELECT lethe.start_archive_job($1)", [account])[0].decode(UUID.self, at: 0)
    }

    /// The file with its job, and its uploads per site of the account (and per removed site
    /// that got it), read in one REPEATABLE READ transaction; nil when there is no such file.
    public func archiveFile(
        _ id: Int64, on connection: Connection
    ) throws -> (file: ArchiveFileDetail, uploads: [ArchiveUploadStatus])? {
        try connection.withTransaction(.repeatableRead) { connection in
            guard let file = try fileDetail(id, on: connection) else { return nil }
            return (file, try uploads(file: id, account: file.accountID, on: connection))
        }
    }

    func fileDetail(_ id: Int64, on connection: Connection) throws -> ArchiveFileDetail? {
        guard
            let row = try connection.query(
                """
                SELECT b.account_id, b.job_id::text, b.part, b.file_name, b.status, b.total_size, b.number_of_files,
                       b.records, b.sha256, array_to_string(b.sites, ', '), b.sites_configured, b.error, b.attempts,
                       b.job_state, b.created_at, b.packed_at, b.uploaded_at, b.downloaded_at, b.deleted_at,
                       b.delete_at, b.approved_at, j.approved_by, j.due_at, j.note, j.cutoffs::text, j.counts::text
                FROM lethe.backup_log b JOIN lethe.archive_jobs j ON j.job_id = b.job_id WHERE b.id = $1
                """, [id]
            ).first
        else { return nil }
        func text(_ index: Int) throws -> String? { try row.decode(String?.self, at: index) }
        func time(_ index: Int) throws -> Date? { try row.decode(Date?.self, at: index) }
        return ArchiveFileDetail(
            id: id, accountID: try row.decode(at: 0), job: try text(1), part: try row.decode(at: 2),
            fileName: try text(3), status: try text(4), totalSize: try row.decode(at: 5),
            numberOfFiles: try row.decode(at: 6), records: try row.decode(at: 7), sha256: try text(8),
            sites: try text(9), sitesConfigured: try row.decode(at: 10), error: try text(11),
            attempts: try row.decode(at: 12), jobState: try text(13), createdAt: try time(14), packedAt: try time(15),
            uploadedAt: try time(16), downloadedAt: try time(17), deletedAt: try time(18), deleteAt: try time(19),
            approvedAt: try time(20), approvedBy: try text(21), dueAt: try time(22), note: try text(23),
            cutoffs: try text(24), counts: try text(25))
    }

    func uploads(file: Int64, account: String, on connection: Connection) throws -> [ArchiveUploadStatus] {
        try connection.query(
            """
            SELECT s.site_id, s.url, s.removed_at IS NOT NULL, coalesce(u.status, 'not yet'), u.size, u.attempts,
                   u.verified_at, u.error
            FROM lethe.backup_sites s
            LEFT JOIN lethe.archive_uploads u ON u.site_id = s.site_id AND u.file_id = $1
            WHERE s.account_id = $2 AND (s.removed_at IS NULL OR u.file_id IS NOT NULL)
            ORDER BY s.site_id
            """, [file, account]
        ).map { row in
            let (site, url, removed, status) = try row.decode((Int64, String, Bool, String).self)
            return ArchiveUploadStatus(
                siteID: site, url: url, removed: removed, status: status, size: try row.decode(at: 4),
                attempts: try row.decode(at: 5), verifiedAt: try row.decode(at: 6), error: try row.decode(at: 7))
        }
    }
}
