import Foundation
import LetheCLI
import Postgres

/// What `lethe demo` shows of the archiving accounts: their backup log, a verified file,
/// and that their rows went only after every site held the archive. Each step checks what
/// it shows and fails the demo (exit 1) when it does not hold.
extension DemoArchiving {
    /// One file of `lethe.backup_log`.
    struct LoggedFile {
        var id: Int64
        var account: String
        var name: String
        var status: String
        var size: Int64?
        var records: Int64?
        var sitesHolding: Int
        var sitesConfigured: Int
        var uploadedAt: Date?
        var error: String?
    }

    func backupLog(on connection: Connection) throws -> [LoggedFile] {
        try connection.query(
            """
            SELECT id, account_id, file_name, status, total_size, records, cardinality(sites), sites_configured,
                   uploaded_at, error
            FROM lethe.backup_log WHERE account_id = ANY($1) ORDER BY account_id, part
            """, [accounts]
        ).map { row in
            LoggedFile(
                id: try row.decode(at: 0), account: try row.decode(at: 1), name: try row.decode(at: 2),
                status: try row.decode(at: 3), size: try row.decode(at: 4), records: try row.decode(at: 5),
                sitesHolding: try row.decode(at: 6), sitesConfigured: try row.decode(at: 7),
                uploadedAt: try row.decode(at: 8), error: try row.decode(at: 9))
        }
    }

    func printBackupLog(_ files: [LoggedFile]) {
        var table = TextTable("ACCOUNT", "ID", "FILE", "STATUS", "BYTES", "RECORDS", "SITES", "UPLOADED")
        for file in files {
            table.add(
                file.account, "\(file.id)", file.name, file.status, file.size.map { "\($0)" } ?? "-",
                file.records.map { "\($0)" } ?? "-", "\(file.sitesHolding)/\(file.sitesConfigured)",
                file.uploadedAt.map(HumanText.timestamp) ?? "-")
        }
        Console.line(table.rendered.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
    }

    /// Rows of the archiving accounts in `lethe.deletion_log`.
    func deletedRows(on connection: Connection) throws -> Int {
        try connection.query(
            "SELECT coalesce(sum(total_rows + blob_rows), 0)::int FROM lethe.deletion_log WHERE account_id = ANY($1)",
            [accounts])[0].decode(Int.self, at: 0)
    }

    /// After the first run: every file is uploaded to every site, the file is on the site's
    /// disk at its recorded size, and nothing of these accounts was deleted (it waits for approval).
    func checkUploaded(on connection: Connection, say: (String) -> Void) throws -> [LoggedFile] {
        let files = try backupLog(on: connection)
        say("backup log of the archiving accounts (lethe.backup_log): uploaded, waiting for approval")
        printBackupLog(files)
        for tenant in tenants where !files.contains(where: { $0.account == tenant.account }) {
            throw DemoFailure("account \(tenant.account) has no archive file in lethe.backup_log")
        }
        for file in files {
            guard file.status == "uploaded", file.sitesHolding == file.sitesConfigured else {
                throw DemoFailure(
                    "archive file \(file.id) of account \(file.account) is \(file.status) on \(file.sitesHolding) of "
                        + "\(file.sitesConfigured) sites: \(file.error ?? "no error recorded")")
            }
            let path = try site(of: file).directory.appendingPathComponent(file.name).path
            let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber
            guard size?.int64Value == file.size else {
                throw DemoFailure("\(path) is not on the site at its recorded size \(file.size ?? -1)")
            }
        }
        let deleted = try deletedRows(on: connection)
        guard deleted == 0 else {
            throw DemoFailure("\(deleted) rows of accounts \(accounts) were deleted before their deletion was approved")
        }
        say(
            "nothing of accounts \(accounts.joined(separator: " and ")) deleted yet: "
                + "\(files.reduce(0) { $0 + ($1.records ?? 0) }) archived records wait for approval")
        return files
    }

    func site(of file: LoggedFile) throws -> Tenant {
        guard let tenant = tenants.first(where: { $0.account == file.account }) else {
            throw DemoFailure("archive file \(file.id) belongs to account \(file.account), which does not archive")
        }
        return tenant
    }

    /// `lethe archive verify` of each account's first file, on its site (the account's stored
    /// key, opened with the master key), then `lethe archive approve` of it.
    func verifyAndApprove(_ files: [LoggedFile], say: (String) -> Void) throws {
        for tenant in tenants {
            guard let file = files.first(where: { $0.account == tenant.account }) else { continue }
            say("verifying account \(tenant.account)'s archive where its site (\(tenant.site)) holds it")
            let output = try lethe(["archive", "verify", tenant.directory.appendingPathComponent(file.name).path])
            guard output.contains(": OK,") else { throw DemoFailure("lethe archive verify printed no OK: \(output)") }
        }
        say("approving the deletions, as an operator would (or set --auto-delete on: deleted at the auto-delete hour)")
        for tenant in tenants {
            guard let file = files.first(where: { $0.account == tenant.account }) else { continue }
            try lethe(["archive", "approve", "\(file.id)"])
        }
    }

    /// After the second run: every file deleted, every batch of these accounts names its
    /// archive, and the first deletion came after the last upload.
    func report(on connection: Connection, say: (String) -> Void) throws {
        let files = try backupLog(on: connection)
        say("backup log after the approved deletion (lethe.backup_log):")
        printBackupLog(files)
        say("archived first, deleted after (lethe.backup_log.uploaded_at, lethe.deletion_log.deleted_at):")
        var table = TextTable("ACCOUNT", "SITE", "LAST UPLOAD", "FIRST DELETION", "ROWS DELETED", "BATCHES")
        for tenant in tenants {
            let (uploaded, firstDeletion, rows, batches, unarchived) = try connection.query(
                """
                SELECT (SELECT max(uploaded_at) FROM lethe.backup_log WHERE account_id = $1),
                       min(deleted_at), coalesce(sum(total_rows + blob_rows), 0)::int, count(*)::int,
                       count(*) FILTER (WHERE archive_id IS NULL)::int
                FROM lethe.deletion_log WHERE account_id = $1
                """, [tenant.account]
            )[0].decode((Date?, Date?, Int, Int, Int).self)
            for file in files where file.account == tenant.account && file.status != "deleted" {
                throw DemoFailure(
                    "archive file \(file.id) of account \(tenant.account) is \(file.status), not deleted: "
                        + (file.error ?? "no error recorded"))
            }
            guard let uploaded, let firstDeletion, rows > 0 else {
                throw DemoFailure("account \(tenant.account): no rows were deleted after its archive was approved")
            }
            guard firstDeletion > uploaded, unarchived == 0 else {
                throw DemoFailure(
                    "account \(tenant.account): a batch was deleted at \(HumanText.timestamp(firstDeletion)) "
                        + "before the upload at \(HumanText.timestamp(uploaded)), or without naming its archive")
            }
            table.add(
                tenant.account, tenant.site, Self.time(uploaded), Self.time(firstDeletion), "\(rows)", "\(batches)")
        }
        Console.line(table.rendered.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
        say(
            "every batch of accounts \(accounts.joined(separator: " and ")) names its archive file and came after its upload"
        )
    }

    /// A time of day with milliseconds (UTC): uploads and deletions are seconds apart.
    static func time(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "HH:mm:ss.SSS"
        return formatter.string(from: date) + "Z"
    }
}
