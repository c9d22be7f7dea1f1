import ArgumentParser
import Foundation
import LetheConfiguration
import Postgres
import Store

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
        "superseded",
    ]

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List archive files, newest first.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Only this account.") var account: String?
        @Option(
            help: "Only this status (\(ArchiveCommand.statuses.joined(separator: ", ")), or failed for both failures).")
        var status: String?
        @Option(help: "At most this many files.") var limit = 50
        @Flag(help: "Print a JSON array of archive files.") var json = false

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
            let rows = try await ArchiveCall.run(context) {
                try ArchiveAdministration(masterKey: nil).backupLog(
                    account: account, status: status, limit: limit, on: $0)
            }
            if json { return try JSONOutput.print(rows) }
            var table = TextTable(
                "ID", "ACCOUNT", "FILE", "CREATED", "SIZE", "FILES", "RECORDS", "STATUS", "SITES", "ERROR")
            for line in rows {
                table.add(
                    "\(line.id)", line.accountID, line.fileName, HumanText.timestamp(line.createdAt),
                    line.totalSize.map(ByteSizeText.format) ?? "-", line.numberOfFiles.map(String.init) ?? "-",
                    line.records.map(String.init) ?? "-", line.status, "\(line.sitesHolding)/\(line.sitesConfigured)",
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

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one archive file: every column, its job's cutoffs and counts, its uploads per site.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The archive file id (lethe archive list).") var id: Int64

        func run() async throws {
            let found = try await ArchiveCall.administer(global) { [id] in try $0.archiveFile(id, on: $1) }
            guard let found else { throw UsageError("no archive file \(id) (lethe archive list shows them)") }
            print(ArchiveFileReport.text(found.file, uploads: found.uploads))
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve deleting the data of an archive file's job (all its files) once every site holds it.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The archive file id (lethe archive list).") var id: Int64

        func run() async throws {
            let approved = try await ArchiveCall.administer(global) { [id] in try $0.approveDeletion(file: id, on: $1) }
            let (state, files) = (approved.state, approved.files)
            let name = "job \(approved.job.uuidString.lowercased()) of account \(approved.accountID)"
            let when: String
            switch state {
            case "deleted": when = "its data was already deleted"
            case _ where approved.waitsForDownload:
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
            let status = try await ArchiveCall.administer(global) { [id] in try $0.confirmDownload(file: id, on: $1) }
            print("archive file \(id) is \(status)")
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Retry a failed file now (with the other failed files of its job).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The archive file id (lethe archive list --status failed).") var id: Int64

        func run() async throws {
            let status = try await ArchiveCall.administer(global) { [id] in try $0.retry(file: id, on: $1) }
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
            let job = try await ArchiveCall.administer(global) { [account] in try $0.startJob(account: account, on: $1)
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
    /// The report of `file` and its `uploads`.
    static func text(_ file: ArchiveFileDetail, uploads: [ArchiveUploadStatus]) -> String {
        func time(_ date: Date?) -> String { date.map(HumanText.timestamp) ?? "-" }
        func text(_ value: String?) -> String { value ?? "-" }
        var table = TextTable("FIELD", "VALUE")
        table.add("id", "\(file.id)")
        table.add("account", file.accountID)
        table.add("job", text(file.job) + " (\(text(file.jobState)), due \(time(file.dueAt)))")
        table.add("part", "\(file.part)")
        table.add("file name", text(file.fileName))
        table.add("status", text(file.status))
        table.add("size", file.totalSize.map { "\(ByteSizeText.format($0)) (\($0) bytes)" } ?? "-")
        table.add("files inside", file.numberOfFiles.map(String.init) ?? "-")
        table.add("records", file.records.map(String.init) ?? "-")
        table.add("sha256", text(file.sha256))
        table.add("sites holding it", "\(file.sitesConfigured) configured; " + text(file.sites))
        table.add("attempts", "\(file.attempts)")
        table.add("error", text(file.error))
        table.add("note", text(file.note))
        for (label, date) in [
            ("created", file.createdAt), ("packed", file.packedAt), ("uploaded", file.uploadedAt),
            ("downloaded", file.downloadedAt), ("deleted", file.deletedAt), ("delete at", file.deleteAt),
            ("approved", file.approvedAt),
        ] {
            table.add(label, time(date))
        }
        table.add("approved by", text(file.approvedBy))
        for (label, json) in [("cutoffs", text(file.cutoffs)), ("counts", text(file.counts))] {
            for (type, value) in jsonLines(json) { table.add("\(label) \(type)", value) }
        }
        return table.rendered + "\n\n" + Self.uploads(uploads, account: file.accountID)
    }

    /// Per site of the account (and removed sites that got the file): the upload's state.
    static func uploads(_ uploads: [ArchiveUploadStatus], account: String) -> String {
        guard !uploads.isEmpty else { return "Uploads: account \(account) has no backup sites" }
        var table = TextTable("SITE", "URL", "UPLOAD", "SIZE", "ATTEMPTS", "VERIFIED", "ERROR")
        for upload in uploads {
            table.add(
                "\(upload.siteID)", upload.url + (upload.removed ? " (removed)" : ""), upload.status,
                upload.size.map(ByteSizeText.format) ?? "-", upload.attempts.map(String.init) ?? "-",
                upload.verifiedAt.map(HumanText.timestamp) ?? "-", upload.error.map { HumanText.clip($0, 60) } ?? "")
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
