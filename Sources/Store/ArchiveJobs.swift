import ArchiveFormat
import Foundation
import Postgres
import Retention

/// One archive job as the worker sees it.
public struct ArchiveJob: Sendable, Equatable {
    /// The job's state machine lives in `Retention` (`ArchiveJobState`, `ArchiveJobEvent`).
    public typealias State = ArchiveJobState
    public var id: UUID
    public var accountID: String
    public var state: State
    public var createdAt: Date
    /// yyyymmddhhmmss of `createdAt` in UTC: the time in the job's file names.
    public var stamp: String
    /// The packing generation the job's current files belong to (`_gN` in their names from 2 on).
    public var generation: Int
    public var approved: Bool
    /// Every site confirmed it pulled every file (only matters with `require_download`).
    public var downloaded: Bool
    public var deleteAt: Date?
}

/// One archive file of a job (a row of `lethe.backup_log`).
public struct ArchiveFileRecord: Sendable, Equatable {
    public var id: Int64
    public var part: Int
    public var name: String
    public var status: String
    public var size: Int64?
    public var sha256: String?
}

/// The archive job's SQL: jobs of an account, the plan (manifest), the transitions of the
/// backup log, and deletion of archived rows. Every step is idempotent: a crash resumes
/// from the recorded state.
public struct ArchiveJobs: Sendable {
    public let registry: CompiledRegistry
    /// Most expired roots of one deleting entity type one job archives (the rest wait for the
    /// next job); keep-only types are archived whole.
    public let maxRootsPerType: Int
    /// Lock and statement timeouts of each deletion batch.
    public let timeouts: DeletionTimeouts
    /// Roots (with their trees) planned per transaction (`archive.plan_chunk_roots`).
    public let planChunkRoots: Int

    public init(
        registry: CompiledRegistry, maxRootsPerType: Int, timeouts: DeletionTimeouts = .standard,
        planChunkRoots: Int = 5_000
    ) {
        precondition(planChunkRoots > 0, "planChunkRoots must be positive")
        self.registry = registry
        self.maxRootsPerType = maxRootsPerType
        self.timeouts = timeouts
        self.planChunkRoots = planChunkRoots
    }

    /// The account's jobs not yet deleted, oldest first.
    public func openJobs(account: String, on connection: Connection) throws -> [ArchiveJob] {
        try connection.query(
            """
            SELECT j.job_id, j.state, j.created_at, to_char(j.created_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS'),
                   j.approved_at IS NOT NULL,
                   NOT EXISTS (SELECT 1 FROM lethe.archive_files f WHERE f.job_id = j.job_id AND f.downloaded_at IS NULL
                                      AND f.status <> \(StateSQL.literal(ArchiveFileState.superseded))),
                   j.delete_at, j.generation
            FROM lethe.archive_jobs j WHERE j.account_id = $1 AND j.state <> \(StateSQL.literal(ArchiveJobState.deleted))
            ORDER BY j.created_at, j.job_id
            """, [account]
        ).map { row in
            let (id, state, created, stamp, approved, downloaded, deleteAt, generation) = try row.decode(
                (UUID, String, Date, String, Bool, Bool, Date?, Int).self)
            return ArchiveJob(
                id: id, accountID: account, state: ArchiveJob.State(rawValue: state) ?? .planning, createdAt: created,
                stamp: stamp, generation: generation, approved: approved, downloaded: downloaded, deleteAt: deleteAt)
        }
    }

    /// The job's current files (its generation's; never the superseded ones), by part.
    public func files(job: UUID, on connection: Connection) throws -> [ArchiveFileRecord] {
        try connection.query(
            """
            SELECT f.id, f.part, f.file_name, f.status, f.total_size, f.sha256
            FROM lethe.archive_files f JOIN lethe.archive_jobs j ON j.job_id = f.job_id AND j.generation = f.generation
            WHERE f.job_id = $1 AND f.status <> \(StateSQL.literal(ArchiveFileState.superseded)) ORDER BY f.part
            """,
            [job]
        ).map { row in
            let (id, part, name, status, size, sha) = try row.decode((Int64, Int, String, String, Int64?, String?).self)
            return ArchiveFileRecord(id: id, part: part, name: name, status: status, size: size, sha256: sha)
        }
    }

    /// The entity types an archive holds, in a fixed order.
    public var types: [CompiledEntityType] { registry.entityTypes.values.sorted { $0.name < $1.name } }

    /// The job's cutoffs and counts as recorded by `plan` (JSON text), for manifest.json.
    public func summary(job: UUID, on connection: Connection) throws -> (cutoffs: String, counts: String) {
        let row = try connection.query(
            "SELECT coalesce(cutoffs, '{}')::text, coalesce(counts, '{}')::text FROM lethe.archive_jobs WHERE job_id = $1",
            [job])[0]
        return try row.decode((String, String).self)
    }

    /// Records one packed file of the job's generation in the backup log as `uploading`, with
    /// its size, entries, records and SHA-256 (a file recorded before, by an attempt that
    /// packed it again, takes the new values).
    func recordFile(_ file: PackedFile, of job: ArchiveJob, on connection: Connection) throws {
        try connection.execute(
            """
            INSERT INTO lethe.archive_files (job_id, account_id, generation, part, file_name, status, total_size,
                                             entries, records, sha256, packed_at)
            VALUES ($1, $2, $9, $3, $4, \(ArchiveFileEvent.pack.targetSQL), $5, $6, $7, $8, clock_timestamp())
            ON CONFLICT (job_id, generation, part) DO UPDATE SET file_name = EXCLUDED.file_name,
                status = \(ArchiveFileEvent.pack.targetSQL),
                total_size = EXCLUDED.total_size, entries = EXCLUDED.entries, records = EXCLUDED.records,
                sha256 = EXCLUDED.sha256, packed_at = clock_timestamp(), error = NULL, updated_at = now()
            """,
            [
                job.id, job.accountID, file.part, file.name, file.size, file.entries, file.records, file.sha256,
                job.generation,
            ])
    }

    /// The (file, site) pairs of the job's current files that already hold a verified copy.
    public func uploaded(job: UUID, on connection: Connection) throws -> Set<[Int64]> {
        Set(
            try connection.query(
                """
                SELECT u.file_id, u.site_id FROM lethe.archive_uploads u JOIN lethe.archive_files f ON f.id = u.file_id
                WHERE f.job_id = $1 AND u.status = 'uploaded' AND f.status <> \(StateSQL.literal(ArchiveFileState.superseded))
                """, [job]
            ).map { [try $0.decode(Int64.self, at: 0), try $0.decode(Int64.self, at: 1)] })
    }

    /// A site holds the file, its size verified.
    public func recordUpload(file: Int64, site: Int64, size: Int64, on connection: Connection) throws {
        try connection.execute(
            """
            INSERT INTO lethe.archive_uploads (file_id, site_id, status, size, verified_at) VALUES ($1, $2, 'uploaded', $3, now())
            ON CONFLICT (file_id, site_id) DO UPDATE SET status = 'uploaded', size = $3, error = NULL, verified_at = now(),
                attempts = lethe.archive_uploads.attempts + 1, updated_at = now()
            """, [file, site, size])
    }

    /// An upload failed (the error is safe to show): the file is `upload_failed` until the retry.
    public func recordUploadFailure(file: Int64, site: Int64, error: String, on connection: Connection) throws {
        try connection.execute(
            """
            INSERT INTO lethe.archive_uploads (file_id, site_id, status, error) VALUES ($1, $2, 'failed', $3)
            ON CONFLICT (file_id, site_id) DO UPDATE SET status = 'failed', error = $3,
                attempts = lethe.archive_uploads.attempts + 1, updated_at = now()
            """, [file, site, error])
        let job = try connection.query(
            """
            UPDATE lethe.archive_files SET status = \(ArchiveFileEvent.failUpload.targetSQL), error = $2, attempts = attempts + 1, updated_at = now()
            WHERE id = $1 AND \(ArchiveFileEvent.failUpload.leaves("status")) RETURNING job_id
            """, [file, error]
        ).first?.decode(UUID.self, at: 0)
        if let job { try connection.execute(Self.retryLater, [job]) }
    }

    /// Every current site holds every file: the files are `uploaded` (or stay `downloaded`)
    /// and the job waits for its deletion: at the account's next auto-delete hour, on
    /// approval, or (with `require_download`) once the sites confirmed their downloads.
    /// Only for the generation the job is at (a worker that lost its lease and finished an
    /// earlier generation's uploads changes nothing).
    public func recordUploaded(_ job: ArchiveJob, on connection: Connection) throws {
        try connection.execute(
            """
            UPDATE lethe.archive_files f SET status = \(Self.heldStatus(ArchiveFileEvent.upload(downloaded:))),
                uploaded_at = coalesce(f.uploaded_at, now()), error = NULL, updated_at = now()
            FROM lethe.archive_jobs j
            WHERE f.job_id = $1 AND j.job_id = f.job_id AND j.generation = $2 AND f.generation = $2
              AND \(ArchiveFileEvent.upload(downloaded: false).leavesAllBut("f.status"))
            """, [job.id, job.generation])
        try connection.execute(
            """
            UPDATE lethe.archive_jobs j SET state = \(ArchiveJobEvent.upload.targetSQL), uploaded_at = coalesce(j.uploaded_at, now()),
                delete_at = CASE WHEN s.auto_delete THEN coalesce(j.delete_at, lethe.next_utc_hour(s.auto_delete_hour)) END
            FROM lethe.archive_settings s
            WHERE j.job_id = $1 AND j.generation = $2 AND s.account_id = j.account_id
              AND \(ArchiveJobEvent.upload.leaves("j.state"))
            """, [job.id, job.generation])
    }

    /// Why the job's deletion waits and when the leader should wake it again (nil: only an
    /// approval or a confirmed download does), or nil when deletion is due now.
    public func deletionWait(_ job: ArchiveJob, on connection: Connection) throws -> (note: String, until: Date?)? {
        let row = try connection.query(
            """
            SELECT s.require_download, s.auto_delete, j.delete_at, j.approved_at IS NOT NULL, j.delete_at <= now()
            FROM lethe.archive_jobs j JOIN lethe.archive_settings s ON s.account_id = j.account_id WHERE j.job_id = $1
            """, [job.id])[0]
        let (requireDownload, autoDelete, deleteAt, approved, due) = try row.decode(
            (Bool, Bool, Date?, Bool, Bool?).self)
        if requireDownload && !job.downloaded {
            // Each confirmation wakes the job; nothing else can make it due.
            return ("waiting for the backup sites to confirm their downloads", nil)
        }
        if approved || due == true { return nil }
        if autoDelete, let deleteAt { return ("auto-delete at \(deleteAt)", deleteAt) }
        return ("waiting for approval: lethe archive approve ID", nil)
    }

    /// Before a task works on the job: should it die on the way (`kill -9`, its attempts spent
    /// on lease expiries), the leader wakes the job again later by itself.
    public func watch(_ job: ArchiveJob, on connection: Connection) throws {
        try connection.execute(Self.retryLater, [job.id])
    }

    /// Sites no longer hold files as uploaded (`missing`: file and site ids): in one
    /// transaction, the job first, it goes back to uploading, those uploads are forgotten and
    /// the files go back to uploading too. Only from `uploaded`: a worker that lost its lease
    /// while another began (or finished) the deletion, after checking every site itself,
    /// changes nothing. False when the job had moved on.
    public func reupload(
        _ job: ArchiveJob, missing: [(file: Int64, site: Int64)], on connection: Connection
    )
        throws -> Bool
    {
        try movingJobFirst(on: connection) { connection in
            try connection.execute(
                """
                UPDATE lethe.archive_jobs SET state = \(ArchiveJobEvent.reupload.targetSQL)
                WHERE job_id = $1 AND \(ArchiveJobEvent.reupload.leaves("state"))
                """, [job.id]) == 1 ? () : nil
        } files: { connection in
            try connection.execute(
                """
                DELETE FROM lethe.archive_uploads u USING unnest($1::bigint[], $2::bigint[]) AS m(file_id, site_id)
                WHERE u.file_id = m.file_id AND u.site_id = m.site_id
                """, [missing.map(\.file), missing.map(\.site)])
            try connection.execute(
                """
                UPDATE lethe.archive_files SET status = \(ArchiveFileEvent.reupload.targetSQL)
                WHERE job_id = $1 AND \(ArchiveFileEvent.reupload.leaves("status"))
                """, [job.id])
        } != nil
    }

    /// Changes a job and then its files in one transaction, the job row first: `job` updates
    /// the job only from the states its event leaves and returns what it changed (nil: the job
    /// had moved on, and `files` does not run). A worker that lost its lease and acts on the
    /// same job meanwhile waits for the job row, then finds it moved and changes nothing.
    func movingJobFirst<T>(
        on connection: Connection, job: (Connection) throws -> T?, files: (Connection) throws -> Void
    ) throws -> T? {
        try connection.withTransaction { connection in
            guard let moved = try job(connection) else { return nil }
            try files(connection)
            return moved
        }
    }

    /// Sets when the leader next wakes the job (nil: only an operator's approval or confirm does).
    public func sleep(_ job: ArchiveJob, until: Date?, note: String?, on connection: Connection) throws {
        try connection.execute(
            "UPDATE lethe.archive_jobs SET wake_at = $2, note = $3 WHERE job_id = $1", [job.id, until, note])
    }
}

extension ArchiveJobs {
    /// A file's status while every site holds it and its rows are not being deleted, after
    /// `event` (`.upload` or `.pauseDeletion`): `downloaded` once a site confirmed its download.
    static func heldStatus(_ event: (_ downloaded: Bool) -> ArchiveFileEvent) -> String {
        "CASE WHEN downloaded_at IS NULL THEN \(event(false).targetSQL) ELSE \(event(true).targetSQL) END"
    }

    /// The key of a store's orphaned blobs in a job's counts (and manifest.json).
    static func orphanCounts(_ store: CompiledBlobStore) -> String { "orphan_gc:\(store.store.name)" }

    /// $1 job. A failed job is woken again later even once its task's own retries are
    /// spent (the task went `dead`): failures are retried automatically until they succeed.
    static let retryLater = """
        UPDATE lethe.archive_jobs SET wake_at = coalesce(wake_at, now() + interval '10 minutes') WHERE job_id = $1
        """

    static func json(_ value: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]), as: UTF8.self)
    }
}
