import ArgumentParser
import Foundation
import Postgres

/// `lethe archive …`: the backup log (one row per archive file) and what operators do with
/// its files: approve their deletion, confirm a download, retry a failure, start a job.
struct ArchiveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "archive",
        abstract:
            "The backup log and its archive files: list, show, approve, confirm, retry, run, verify, extract, restore.",
        discussion: """
            Reads lethe.backup_log and calls lethe.approve_archive_deletion, \
            lethe.confirm_archive_download, lethe.retry_archive and lethe.start_archive_job, \
            the functions an application or psql would call. IDs are archive file ids \
            (lethe archive list); approving one file approves its whole job.
            """,
        subcommands: [
            List.self, Show.self, Approve.self, Confirm.self, Retry.self, Run.self, Verify.self, Extract.self,
            Restore.self,
        ])

    /// The statuses of `lethe.archive_files`, in their order.
    static let statuses = [
        "archiving", "uploading", "uploaded", "downloaded", "deleting", "deleted", "upload_failed", "delete_failed",
    ]

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List archive files, newest first.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Only this account.") var account: String?
        @Option(
            help: "Only this status (\(ArchiveCommand.statuses.joined(separator: ", ")), or failed for both failures).")
        var status: String?
        @Option(help: "At most this many files.") var limit = 50

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.archive")
            if let status, !ArchiveCommand.statuses.contains(status), status != "failed" {
                throw UsageError(
                    "--status \"\(status)\" is not a status; expected one of "
                        + (ArchiveCommand.statuses + ["failed"]).joined(separator: ", "))
            }
            guard limit >= 1 else {
                throw UsageError("--limit \(limit) is not allowed; expected a whole number of at least 1")
            }
            let (account, status, limit) = (self.account, self.status, self.limit)
            let rows = try await ArchiveCall.run(context) { connection in
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
                    BackupLogLine(
                        id: try row.decode(at: 0), account: try row.decode(at: 1), fileName: try row.decode(at: 2),
                        created: try row.decode(at: 3), size: try row.decode(at: 4), files: try row.decode(at: 5),
                        records: try row.decode(at: 6), status: try row.decode(at: 7), held: try row.decode(at: 8),
                        configured: try row.decode(at: 9), error: try row.decode(at: 10))
                }
            }
            var table = TextTable(
                "ID", "ACCOUNT", "FILE", "CREATED", "SIZE", "FILES", "RECORDS", "STATUS", "SITES", "ERROR")
            for line in rows {
                table.add(
                    "\(line.id)", line.account, line.fileName, HumanText.timestamp(line.created),
                    line.size.map(ByteSizeText.format) ?? "-", line.files.map(String.init) ?? "-",
                    line.records.map(String.init) ?? "-", line.status, "\(line.held)/\(line.configured)",
                    line.error.map { HumanText.clip($0, 50) } ?? "")
            }
            if !rows.isEmpty {
                print(table.rendered)
            } else if account == nil && status == nil {
                print("the backup log is empty (accounts archive once on: lethe account archive ACCOUNT --enable)")
            } else {
                print("no archive files match")
            }
        }
    }

    /// One row of `lethe archive list`.
    struct BackupLogLine: Sendable {
        var id: Int64
        var account: String
        var fileName: String
        var created: Date
        var size: Int64?
        var files: Int?
        var records: Int64?
        var status: String
        var held: Int
        var configured: Int
        var error: String?
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one archive file: every column, its job's cutoffs and counts, its uploads per site.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The archive file id (lethe archive list).") var id: Int64

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.archive")
            let id = self.id
            let text = try await ArchiveCall.run(context) { connection in
                try connection.withTransaction(.repeatableRead) { try ArchiveFileReport.read(id, on: $0) }
            }
            guard let text else { throw UsageError("no archive file \(id) (lethe archive list shows them)") }
            print(text)
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve deleting the data of an archive file's job (all its files) once every site holds it.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The archive file id (lethe archive list).") var id: Int64

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.archive")
            let id = self.id
            let (job, account, state, files, waitsForDownload) = try await ArchiveCall.run(context) { connection in
                try connection.withTransaction { connection in
                    let job = try connection.query("SELECT lethe.approve_archive_deletion($1)", [id])[0]
                        .decode(UUID.self, at: 0)
                    let row = try connection.query(
                        """
                        SELECT j.account_id, j.state, (SELECT count(*) FROM lethe.archive_files f WHERE f.job_id = j.job_id),
                               coalesce(s.require_download, false)
                               AND EXISTS (SELECT 1 FROM lethe.archive_files f
                                           WHERE f.job_id = j.job_id AND f.downloaded_at IS NULL)
                        FROM lethe.archive_jobs j LEFT JOIN lethe.archive_settings s ON s.account_id = j.account_id
                        WHERE j.job_id = $1
                        """, [job])[0]
                    let (account, state, files, waits) = try row.decode((String, String, Int, Bool).self)
                    return (job, account, state, files, waits)
                }
            }
            let name = "job \(job.uuidString.lowercased()) of account \(account)"
            let when: String
            switch state {
            case "deleted": when = "its data was already deleted"
            case _ where waitsForDownload:
                when = "its data is deleted once the backup sites confirm their downloads (lethe archive confirm ID)"
            case "uploaded", "deleting": when = "its data is deleted now: the leader wakes the job on its next tick"
            default: when = "its data is deleted once every backup site holds every file (the job is \(state))"
            }
            print("approved the whole \(name) (\(files) file\(files == 1 ? "" : "s")): \(when)")
        }
    }

    struct Confirm: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Confirm that the backup sites pulled an uploaded file (for accounts that require it).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The archive file id (lethe archive list).") var id: Int64

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.archive")
            let id = self.id
            let status = try await ArchiveCall.run(context) {
                try $0.query("SELECT lethe.confirm_archive_download($1)", [id])[0].decode(String.self, at: 0)
            }
            print("archive file \(id) is \(status)")
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Retry a failed file now (with the other failed files of its job).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The archive file id (lethe archive list --status failed).") var id: Int64

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.archive")
            let id = self.id
            let status = try await ArchiveCall.run(context) {
                try $0.query("SELECT lethe.retry_archive($1)", [id])[0].decode(String.self, at: 0)
            }
            print(
                "archive file \(id) (and its job's other failed files) is \(status) again; "
                    + "the leader picks the job up on its next tick")
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start an archive job for an account now, besides the daily one.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The account id.") var account: String

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.archive")
            let account = self.account
            let job = try await ArchiveCall.run(context) {
                try $0.query("SELECT lethe.start_archive_job($1)", [account])[0].decode(UUID.self, at: 0)
            }
            print(job.uuidString.lowercased())
            LetheMain.printError(
                "archive job started for account \(account); the leader enqueues its task on its next tick "
                    + "(lethe archive list --account \(account))")
        }
    }
}

/// `lethe archive show`: one archive file as label/value lines, then its uploads per site.
enum ArchiveFileReport {
    /// The report, or nil when there is no such file.
    static func read(_ id: Int64, on connection: Connection) throws -> String? {
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
        func time(_ index: Int) throws -> String {
            try row.decode(Date?.self, at: index).map(HumanText.timestamp) ?? "-"
        }
        func text(_ index: Int) throws -> String { try row.decode(String?.self, at: index) ?? "-" }
        let account: String = try row.decode(at: 0)
        let size = try row.decode(Int64?.self, at: 5)
        var table = TextTable("FIELD", "VALUE")
        table.add("id", "\(id)")
        table.add("account", account)
        table.add("job", try text(1) + " (\(try text(13)), due \(try time(22)))")
        table.add("part", "\(try row.decode(Int.self, at: 2))")
        table.add("file name", try text(3))
        table.add("status", try text(4))
        table.add("size", size.map { "\(ByteSizeText.format($0)) (\($0) bytes)" } ?? "-")
        table.add("files inside", try row.decode(Int?.self, at: 6).map(String.init) ?? "-")
        table.add("records", try row.decode(Int64?.self, at: 7).map(String.init) ?? "-")
        table.add("sha256", try text(8))
        table.add("sites holding it", "\(try row.decode(Int.self, at: 10)) configured; " + (try text(9)))
        table.add("attempts", "\(try row.decode(Int.self, at: 12))")
        table.add("error", try text(11))
        table.add("note", try text(23))
        for (label, index) in [
            ("created", 14), ("packed", 15), ("uploaded", 16), ("downloaded", 17), ("deleted", 18),
            ("delete at", 19), ("approved", 20),
        ] {
            table.add(label, try time(index))
        }
        table.add("approved by", try text(21))
        for (label, json) in [("cutoffs", try text(24)), ("counts", try text(25))] {
            for (type, value) in jsonLines(json) { table.add("\(label) \(type)", value) }
        }
        return table.rendered + "\n\n" + (try uploads(file: id, account: account, on: connection))
    }

    /// Per site of the account (and removed sites that got the file): the upload's state.
    static func uploads(file: Int64, account: String, on connection: Connection) throws -> String {
        let rows = try connection.query(
            """
            SELECT s.site_id, s.url, s.removed_at IS NOT NULL, coalesce(u.status, 'not yet'), u.size, u.attempts,
                   u.verified_at, u.error
            FROM lethe.backup_sites s
            LEFT JOIN lethe.archive_uploads u ON u.site_id = s.site_id AND u.file_id = $1
            WHERE s.account_id = $2 AND (s.removed_at IS NULL OR u.file_id IS NOT NULL)
            ORDER BY s.site_id
            """, [file, account])
        guard rows.count > 0 else { return "Uploads: account \(account) has no backup sites" }
        var table = TextTable("SITE", "URL", "UPLOAD", "SIZE", "ATTEMPTS", "VERIFIED", "ERROR")
        for row in rows {
            let (site, url, removed, status) = try row.decode((Int64, String, Bool, String).self)
            table.add(
                "\(site)", url + (removed ? " (removed)" : ""), status,
                try row.decode(Int64?.self, at: 4).map(ByteSizeText.format) ?? "-",
                try row.decode(Int?.self, at: 5).map(String.init) ?? "-",
                try row.decode(Date?.self, at: 6).map(HumanText.timestamp) ?? "-",
                try row.decode(String?.self, at: 7).map { HumanText.clip($0, 60) } ?? "")
        }
        return "Uploads (lethe.archive_uploads)\n" + table.rendered
    }

    /// `{"type": {"k": v, …}}` as one line per type: `k v, k v`.
    static func jsonLines(_ json: String) -> [(String, String)] {
        guard json != "-",
            let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        else { return [] }
        return object.keys.sorted().map { type in
            guard let fields = object[type] as? [String: Any] else { return (type, "\(object[type] ?? "")") }
            return (type, fields.keys.sorted().map { "\($0) \(fields[$0] ?? "")" }.joined(separator: ", "))
        }
    }
}
