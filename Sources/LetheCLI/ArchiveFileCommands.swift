import ArchiveFormat
import ArgumentParser
import Foundation
import LetheConfiguration
import Postgres
import Store

/// `lethe archive verify | extract | restore`: what an operator does with archive files
/// themselves. Every entry is read once, in order, hashed as it streams and checked against
/// its part's manifest.json (the last entry); memory stays bounded by a chunk and a batch.
/// The key comes from --key-file or the account's stored key, never from argv or the
/// environment, and is never printed.
extension ArchiveCommand {
    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check archive files: every entry's size, records and SHA-256 against the part's manifest.",
            discussion: ArchiveFileOptions.keyDiscussion + " Exits 1 when any file fails.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var options: ArchiveFileOptions

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.archive")
            let files = try ArchiveFile.checked(options.files)
            let keys = try await ArchiveKeys.resolve(keyFile: options.keyFile, files: files, context: context)
            var failed = 0
            for file in files {
                do {
                    let summary = try ArchivePartScan.scan(file, key: keys.key(for: file))
                    print("\(file.path): OK, \(summary.text)")
                } catch let error as ArchiveFileError {
                    failed += 1
                    LetheMain.printError("lethe: error: \(error)")
                }
            }
            if failed > 0 {
                LetheMain.printError(
                    "lethe: \(failed) of \(files.count) archive file\(files.count == 1 ? "" : "s") failed")
                throw ExitCode.failure
            }
        }
    }

    struct Extract: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write an archive's entries (records and blob files) into a directory, verifying them.",
            discussion: ArchiveFileOptions.keyDiscussion
                + """
                 The files are the parts of one job; an entry cut at a part boundary is joined \
                again. Part 1's manifest becomes manifest.json, part N's manifest_partN.json. \
                Existing files are never overwritten; on any failure what was written is removed.
                """)
        @OptionGroup var global: GlobalOptions
        @OptionGroup var options: ArchiveFileOptions
        @Option(
            help: ArgumentHelp(
                "The directory to write into (created when only its last part is missing).", valueName: "dir"))
        var to: String

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.archive")
            let files = try ArchiveParts.order(try ArchiveFile.checked(options.files))
            let sink = ExtractSink(directory: try Self.target(to))
            let keys = try await ArchiveKeys.resolve(keyFile: options.keyFile, files: files, context: context)
            var summaries: [PartSummary] = []
            do {
                try sink.createDirectory()
                for (index, file) in files.enumerated() {
                    sink.part = index + 1
                    let summary = try ArchivePartScan.scan(file, key: keys.key(for: file), into: sink)
                    try ArchiveParts.check(summary, index: index, count: files.count, first: summaries.first)
                    summaries.append(summary)
                }
            } catch {
                sink.removeWritten()
                throw error
            }
            for summary in summaries { print("\(summary.file.path): OK, \(summary.text)") }
            print("extracted \(sink.filesWritten) files into \(sink.directory)")
        }

        /// Checks `--to`: an existing directory, or a path whose parent is one (made later).
        static func target(_ directory: String) throws -> String {
            let absolute = URL(fileURLWithPath: directory).standardizedFileURL.path
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory) {
                guard isDirectory.boolValue else {
                    throw UsageError("--to \(directory) is not a directory; expected a directory to extract into")
                }
            } else {
                let parent = URL(fileURLWithPath: absolute).deletingLastPathComponent().path
                guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue
                else {
                    throw UsageError(
                        "--to \(directory): neither it nor its parent \(parent) is a directory; expected an existing "
                            + "directory, or a new one inside an existing directory")
                }
            }
            return absolute
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-insert an archive's rows and blobs into the database, in one transaction.",
            discussion: ArchiveFileOptions.keyDiscussion
                + """
                 The files are the parts of one job. Blob rows go in first (with their content), \
                then each entity type's tables, root first, with the configuration's registry. \
                Nothing is overwritten: if any archived key exists the whole restore is rolled \
                back (blob rows still present exactly as archived are left as they are). Rows \
                of keep-only types (delete: false) are skipped: retention never deletes them. \
                Every checksum is checked before the commit. With --key-file, only files that \
                the backup log (lethe.backup_log) records for the account the file name gives, \
                with the same name and SHA-256, are restored, and any other is refused (exit 2) \
                before anything is written: a key proves only who could encrypt a file, not \
                whose rows it holds. Without --key-file, the account's own stored key must open it.
                """)
        @OptionGroup var global: GlobalOptions
        @OptionGroup var options: ArchiveFileOptions

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.archive")
            let files = try ArchiveParts.order(try ArchiveFile.checked(options.files))
            let keys = try await ArchiveKeys.resolve(keyFile: options.keyFile, files: files, context: context)
            let registry = try await context.registry()
            let (results, summaries): ([ArchiveRestore.TableResult], [PartSummary])
            do {
                (results, summaries) = try await context.withDatabase(name: "lethe-restore") { connection in
                    try connection.withTransaction { connection in
                        try Self.restore(
                            files, keys: keys, onlyRecorded: options.keyFile != nil, registry: registry, on: connection)
                    }
                }
            } catch let error as ArchiveRestoreError where error.kind == .configuration {
                throw UsageError("restore rolled back, nothing changed: \(error.description)")
            } catch let error as PostgresError {
                throw ArchiveFileError("restore failed and was rolled back, nothing changed: \(error)")
            }
            let manifest = summaries[0].manifest
            let entries = summaries.reduce(0) { $0 + $1.entries }
            print(
                "restored job \(manifest.job) of account \(manifest.account) from \(files.count) file"
                    + "\(files.count == 1 ? "" : "s") (\(entries) entries checked against their manifests)")
            var table = TextTable("TABLE", "FROM", "RESTORED", "NOTE")
            for result in results {
                var notes: [String] = []
                if result.identical > 0 { notes.append("\(result.identical) already present as archived") }
                if result.skipped > 0 { notes.append("\(result.skipped) skipped: a keep-only type, never deleted") }
                table.add(result.table, result.source, "\(result.restored)", notes.joined(separator: "; "))
            }
            print(results.isEmpty ? "the archive holds no records" : table.rendered)
        }

        /// Streams every part into the open transaction; throws (so it rolls back) on a bad
        /// checksum, a part that does not belong, or an archived key that exists. With
        /// `onlyRecorded` (a key from --key-file), first refuses any part the backup log does
        /// not record for the account.
        static func restore(
            _ files: [ArchiveFile], keys: ArchiveKeys, onlyRecorded: Bool, registry: CompiledRegistry,
            on connection: Connection
        ) throws -> ([ArchiveRestore.TableResult], [PartSummary]) {
            guard let account = files[0].account else {
                throw ArchiveRestoreError(
                    .configuration,
                    "cannot tell the account of \(files[0].path) from its name (expected backup_ACCOUNT_JOB_STAMP.zip): "
                        + "restore checks every record against it")
            }
            if onlyRecorded { try requireRecorded(files, account: account, on: connection) }
            let restore = try ArchiveRestore(registry: registry, account: account, on: connection)
            let sink = RestoreSink(restore)
            var summaries: [PartSummary] = []
            for (index, file) in files.enumerated() {
                sink.file = file.path
                let summary = try ArchivePartScan.scan(file, key: keys.key(for: file), into: sink)
                try ArchiveParts.check(summary, index: index, count: files.count, first: summaries.first)
                summaries.append(summary)
            }
            try sink.finish()
            if let other = summaries.first(where: { $0.manifest.account != account }) {
                throw ArchiveRestoreError(
                    .configuration,
                    "the manifest names account \(other.manifest.account), but the file name names \(account)")
            }
            if let conflict = restore.conflict { throw conflict }
            return (restore.results, summaries)
        }

        /// Refuses (before anything is written) a part that the backup log does not record,
        /// by name and SHA-256, for `account`. A key from --key-file proves only that whoever
        /// made the file held that key: a tenant could encrypt, with its own key, a file that
        /// names another account. A file Lethe wrote for the account is recorded as written.
        static func requireRecorded(_ files: [ArchiveFile], account: String, on connection: Connection) throws {
            for file in files {
                let sha256 = try file.sha256()
                guard
                    try !ArchiveRestore.isRecorded(
                        account: account, fileName: file.name, sha256: sha256, on: connection)
                else { continue }
                throw UsageError(
                    "refusing to restore \(file.path) into account \(account) with --key-file: Lethe did not write "
                        + "this file for account \(account) (the backup log, lethe.backup_log, records no file of the "
                        + "account with this name and SHA-256 \(sha256)); with --key-file, restore accepts only files "
                        + "the backup log records for the account the file name gives, byte for byte; nothing was "
                        + "written")
            }
        }
    }
}

/// The arguments verify, extract and restore share.
struct ArchiveFileOptions: ParsableArguments {
    static let keyDiscussion = """
        The archive key is the first line of --key-file (- for stdin); without it, the stored \
        key of the account the file name gives (backup_ACCOUNT_JOB_STAMP.zip), opened with the \
        master key (archive.master_key_file or LETHE_MASTER_KEY_FILE).
        """

    @Argument(help: ArgumentHelp("Archive files (backup_ACCOUNT_JOB_STAMP[_partN].zip).", valueName: "file"))
    var files: [String] = []
    @Option(
        help: ArgumentHelp(
            "A file whose first line is the archive key (- for stdin); default: the account's stored key.",
            valueName: "file"))
    var keyFile: String?
}

extension ArchiveFile {
    /// The files, each a readable regular file; at least one.
    static func checked(_ paths: [String]) throws -> [ArchiveFile] {
        guard !paths.isEmpty else {
            throw UsageError("no archive file given; expected one or more backup_ACCOUNT_JOB_STAMP.zip files")
        }
        return try paths.map { path in
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
                FileManager.default.isReadableFile(atPath: path)
            else {
                throw UsageError(
                    "cannot read the archive file \(path): no such readable file; expected a backup_….zip file")
            }
            return ArchiveFile(path: path)
        }
    }
}

extension ArchiveKeys {
    /// --key-file's key for every file, or the stored key of the account each file's name gives.
    static func resolve(keyFile: String?, files: [ArchiveFile], context: CommandContext) async throws -> ArchiveKeys {
        if let keyFile {
            let secret = try SecretFile.firstLine(keyFile, what: "archive key file")
            return ArchiveKeys(single: Key(secret: secret, source: "the key in \(keyFile == "-" ? "stdin" : keyFile)"))
        }
        var accounts: [String] = []
        for file in files {
            guard let account = file.account else {
                throw UsageError(
                    "cannot tell the account of \(file.path) from its name (expected backup_ACCOUNT_JOB_STAMP.zip); "
                        + "give the archive key with --key-file FILE (- for stdin)")
            }
            if !accounts.contains(account) { accounts.append(account) }
        }
        guard let masterKey = try context.configuration.masterKey() else {
            throw UsageError(
                "no archive key: give --key-file FILE (the key on its first line, - for stdin), or configure "
                    + "archive.master_key_file (or LETHE_MASTER_KEY_FILE) and the database to use the account's stored key"
            )
        }
        let administration = ArchiveAdministration(masterKey: masterKey)
        let wanted = accounts
        do {
            let secrets = try await ArchiveCall.run(context) { connection in
                try wanted.map { try administration.archiveKey(account: $0, on: connection) }
            }
            var keys: [String: Key] = [:]
            for (account, secret) in zip(wanted, secrets) {
                keys[account] = Key(secret: secret, source: "the stored archive key of account \(account)")
            }
            return ArchiveKeys(byAccount: keys)
        } catch let error as UsageError {
            throw UsageError("\(error.description); or give the archive key with --key-file FILE (- for stdin)")
        }
    }
}

extension PartSummary {
    /// One line for the operator: what the part is and holds.
    var text: String {
        "account \(manifest.account), job \(manifest.job), part \(manifest.part)"
            + (manifest.isFinal ? " (the last)" : " (more follow)")
            + ": \(entries) entries, \(records) records, \(ByteSizeText.format(bytes)) (\(bytes) bytes)"
    }
}
