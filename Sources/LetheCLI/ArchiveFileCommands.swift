import Archive
import ArgumentParser
import Crypto
import Foundation
import Postgres
import Store

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

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
            let sink = try ExtractSink(directory: to)
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
                Every checksum is checked before the commit.
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
                        try Self.restore(files, keys: keys, registry: registry, on: connection)
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
        /// checksum, a part that does not belong, or an archived key that exists.
        static func restore(
            _ files: [ArchiveFile], keys: ArchiveKeys, registry: CompiledRegistry, on connection: Connection
        ) throws -> ([ArchiveRestore.TableResult], [PartSummary]) {
            guard let account = files[0].account else {
                throw ArchiveRestoreError(
                    .configuration,
                    "cannot tell the account of \(files[0].path) from its name (expected backup_ACCOUNT_JOB_STAMP.zip): "
                        + "restore checks every record against it")
            }
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

/// A failure reading, checking or restoring an archive file (exit 1); the message names
/// the file and entry, never the key or row contents.
struct ArchiveFileError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// An archive file from the command line, and what its name says (nil when it does not
/// follow `ArchiveLayout.fileName`).
struct ArchiveFile: Sendable {
    var path: String
    var account: String?
    var job: String?
    var part: Int?

    init(path: String) {
        self.path = path
        let name = URL(fileURLWithPath: path).lastPathComponent
        let pattern =
            #/backup_(.+)_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})_([0-9]{14})(?:_part([0-9]+))?\.zip/#
        if let match = name.wholeMatch(of: pattern) {
            account = String(match.1).removingPercentEncoding
            job = String(match.2)
            part = match.4.flatMap { Int($0) } ?? 1
        }
    }

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

/// The archive key for each file: --key-file's, or the stored key of the account its name
/// gives. `source` says where a key came from, for messages; the key itself is never shown.
struct ArchiveKeys: Sendable {
    struct Key: Sendable {
        var secret: String
        var source: String
    }

    private var single: Key?
    private var byAccount: [String: Key] = [:]

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
        guard let masterKey = try context.masterKey() else {
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
            var keys = ArchiveKeys()
            for (account, secret) in zip(wanted, secrets) {
                keys.byAccount[account] = Key(secret: secret, source: "the stored archive key of account \(account)")
            }
            return keys
        } catch let error as UsageError {
            throw UsageError("\(error.description); or give the archive key with --key-file FILE (- for stdin)")
        }
    }

    func key(for file: ArchiveFile) -> Key {
        if let single { return single }
        return byAccount[file.account!]!
    }
}

/// A part's manifest.json, as `ArchivePartWriter` writes it (the fields checked here).
struct ArchiveManifest: Decodable, Sendable {
    struct Entry: Decodable, Sendable {
        var name: String
        var size: Int64
        var records: Int
        var sha256: String
    }

    var account: String
    var job: String
    var part: Int
    var isFinal: Bool
    var entries: [Entry]

    enum CodingKeys: String, CodingKey {
        case account, job, part, entries
        case isFinal = "final"
    }
}

/// One part, read to its end and found to match its manifest.
struct PartSummary: Sendable {
    var file: ArchiveFile
    var manifest: ArchiveManifest
    /// Entries in the ZIP, the manifest included.
    var entries: Int
    var records: Int
    var bytes: Int64

    var text: String {
        "account \(manifest.account), job \(manifest.job), part \(manifest.part)"
            + (manifest.isFinal ? " (the last)" : " (more follow)")
            + ": \(entries) entries, \(records) records, \(ByteSizeText.format(bytes)) (\(bytes) bytes)"
    }
}

/// Receives one part's entries as they stream: begin, the data in chunks, end.
protocol ArchiveEntrySink: AnyObject {
    func begin(_ name: String) throws
    func write(_ bytes: UnsafeRawBufferPointer) throws
    func end() throws
}

/// Reads one archive part from start to end, handing every entry to a sink while hashing
/// it, then checks what it read against the part's manifest (its last entry).
enum ArchivePartScan {
    /// A manifest larger than this is refused (it lists every entry: about 150 bytes each).
    static let manifestLimit = 256 << 20

    static func scan(
        _ file: ArchiveFile, key: ArchiveKeys.Key, into sink: (any ArchiveEntrySink)? = nil
    ) throws -> PartSummary {
        var current: String?
        var decrypted = false  // an encrypted entry was read: the key is right
        func reading<T>(_ body: () throws -> T) throws -> T {
            do {
                return try body()
            } catch let error as ArchiveError {
                if error.isWrongPassphrase && !decrypted {
                    throw ArchiveFileError(
                        "\(file.path): \(key.source) does not open the archive: the key is wrong (\(error.message))")
                }
                if error.isWrongPassphrase {
                    throw ArchiveFileError(
                        "\(file.path) is damaged: entry \(current ?? "") does not decrypt with the key that opened "
                            + "the entries before it (\(error.message))")
                }
                throw ArchiveFileError(
                    "\(file.path) is damaged or not a Lethe archive" + (current.map { " (entry \($0))" } ?? "")
                        + ": \(error.message)")
            }
        }
        let reader = try reading { try ZipReader(openingFileAt: file.path, passphrase: key.secret) }
        defer { reader.close() }
        var read: [ArchiveManifest.Entry] = []
        var seen = Set<String>()
        var manifestData: Data?
        while let info = try reading({ try reader.nextEntry() }) {
            current = info.name
            if manifestData != nil {
                throw ArchiveFileError(
                    "\(file.path): entry \(info.name) follows manifest.json, which must be the last entry")
            }
            guard seen.insert(info.name).inserted else {
                throw ArchiveFileError("\(file.path): entry \(info.name) appears twice")
            }
            let isManifest = info.name == ArchiveLayout.manifest
            var hasher = SHA256()
            var size: Int64 = 0
            var splitter = info.name.hasPrefix("records/") ? RecordSplitter(keepsRecords: false) : nil
            var manifest = Data()
            try sink?.begin(info.name)
            try reading {
                try reader.readEntry { chunk in
                    hasher.update(bufferPointer: chunk)
                    size += Int64(chunk.count)
                    splitter?.feed(chunk) { _ in }
                    if isManifest {
                        guard manifest.count + chunk.count <= manifestLimit else {
                            throw ArchiveFileError("\(file.path): manifest.json is larger than \(manifestLimit) bytes")
                        }
                        manifest.append(contentsOf: chunk)
                    }
                    try sink?.write(chunk)
                }
            }
            try sink?.end()
            if info.isEncrypted { decrypted = true }
            if isManifest {
                manifestData = manifest
            } else {
                let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
                read.append(.init(name: info.name, size: size, records: splitter?.count ?? 0, sha256: digest))
            }
        }
        guard let manifestData else {
            throw ArchiveFileError("\(file.path): no manifest.json (not a Lethe archive, or cut short)")
        }
        let manifest: ArchiveManifest
        do {
            manifest = try JSONDecoder().decode(ArchiveManifest.self, from: manifestData)
        } catch {
            throw ArchiveFileError("\(file.path): manifest.json is not a Lethe archive manifest (\(error))")
        }
        let problems = compare(read, with: manifest, file: file)
        guard problems.isEmpty else {
            let shown = problems.prefix(20) + (problems.count > 20 ? ["… and \(problems.count - 20) more"] : [])
            throw ArchiveFileError(
                "\(file.path) does not match its manifest:\n  " + shown.joined(separator: "\n  "))
        }
        return PartSummary(
            file: file, manifest: manifest, entries: read.count + 1, records: read.reduce(0) { $0 + $1.records },
            bytes: read.reduce(0) { $0 + $1.size })
    }

    /// Every difference between what was read and what the manifest lists.
    static func compare(
        _ read: [ArchiveManifest.Entry], with manifest: ArchiveManifest, file: ArchiveFile
    ) -> [String] {
        var problems: [String] = []
        if let account = file.account, let job = file.job, let part = file.part,
            account != manifest.account || job != manifest.job || part != manifest.part
        {
            problems.append(
                "the file name says account \(account), job \(job), part \(part); the manifest says account "
                    + "\(manifest.account), job \(manifest.job), part \(manifest.part)")
        }
        var listed: [String: ArchiveManifest.Entry] = [:]
        for entry in manifest.entries {
            if listed.updateValue(entry, forKey: entry.name) != nil {
                problems.append("the manifest lists entry \(entry.name) twice")
            }
        }
        for entry in read {
            guard let expected = listed.removeValue(forKey: entry.name) else {
                problems.append("entry \(entry.name) is in the archive but not in its manifest")
                continue
            }
            if entry.size != expected.size {
                problems.append("entry \(entry.name) has \(entry.size) bytes; the manifest says \(expected.size)")
            }
            if entry.records != expected.records {
                problems.append(
                    "entry \(entry.name) holds \(entry.records) records; the manifest says \(expected.records)")
            }
            if entry.sha256 != expected.sha256.lowercased() {
                problems.append(
                    "entry \(entry.name) has SHA-256 \(entry.sha256); the manifest says \(expected.sha256)")
            }
        }
        for entry in manifest.entries where listed[entry.name] != nil {
            problems.append("entry \(entry.name) is in the manifest but missing from the archive")
        }
        return problems
    }
}

/// Files given together as one archive: the parts 1…n of one job.
enum ArchiveParts {
    /// `files` in part order by their names, which must name one job without gaps. Files
    /// whose names do not follow the pattern keep their order; their manifests decide.
    static func order(_ files: [ArchiveFile]) throws -> [ArchiveFile] {
        guard files.allSatisfy({ $0.part != nil }) else { return files }
        let first = files[0]
        if let other = files.first(where: { $0.account != first.account || $0.job != first.job }) {
            throw UsageError(
                "\(other.path) and \(first.path) belong to different archive jobs; give the parts of one job together")
        }
        let sorted = files.sorted { $0.part! < $1.part! }
        for (index, file) in sorted.enumerated() where file.part != index + 1 {
            throw UsageError(
                index > 0 && sorted[index - 1].part == file.part
                    ? "part \(file.part!) is given twice (\(sorted[index - 1].path), \(file.path))"
                    : "part \(index + 1) of job \(first.job!) is missing; give every part of the archive")
        }
        return sorted
    }

    /// Checks part `index` (0-based) of `count` against its place and the first part.
    static func check(_ summary: PartSummary, index: Int, count: Int, first: PartSummary?) throws {
        let manifest = summary.manifest
        let path = summary.file.path
        if let first, first.manifest.account != manifest.account || first.manifest.job != manifest.job {
            throw ArchiveFileError(
                "\(path) belongs to job \(manifest.job) of account \(manifest.account), not to job "
                    + "\(first.manifest.job) of account \(first.manifest.account) like \(first.file.path); "
                    + "give the parts of one job together")
        }
        guard manifest.part == index + 1 else {
            throw ArchiveFileError(
                "\(path) is part \(manifest.part) of job \(manifest.job), where part \(index + 1) belongs; "
                    + "give every part of the archive")
        }
        if index < count - 1 && manifest.isFinal {
            throw ArchiveFileError("\(path) is the last part of job \(manifest.job), but more files were given")
        }
        if index == count - 1 && !manifest.isFinal {
            throw ArchiveFileError(
                "the archive goes on after \(path) (its manifest says more parts follow); give every part, "
                    + "up to the last")
        }
    }
}

/// Splits a records entry into its records: one JSON object a line, as
/// `COPY … (FORMAT csv, QUOTE E'\x01')` writes them. A record whose JSON holds a line
/// break (a `json` column keeps its text) is quoted with 0x01, and a 0x01 inside doubled.
struct RecordSplitter {
    private enum State { case start, plain, quoted, quoteInQuoted }
    /// Records completed so far.
    private(set) var count = 0
    private let keepsRecords: Bool
    private var record: [UInt8] = []
    private var state = State.start

    init(keepsRecords: Bool) { self.keepsRecords = keepsRecords }

    /// True between records (not inside one).
    var isAtBoundary: Bool { state == .start }

    /// Consumes `bytes`; calls `emit` with each completed record (unquoted, without its
    /// line break) when it keeps records.
    mutating func feed(_ bytes: UnsafeRawBufferPointer, _ emit: ([UInt8]) throws -> Void) rethrows {
        var index = 0
        while index < bytes.count {
            switch state {
            case .start:
                if bytes[index] == 0x01 {
                    state = .quoted
                    index += 1
                } else {
                    state = .plain
                }
            case .plain:
                let end = bytes[index...].firstIndex(of: 0x0A) ?? bytes.count
                if keepsRecords { record.append(contentsOf: bytes[index..<end]) }
                index = end
                if end < bytes.count {
                    index += 1
                    count += 1
                    state = .start
                    if keepsRecords {
                        try emit(record)
                        record.removeAll(keepingCapacity: true)
                    }
                }
            case .quoted:
                let end = bytes[index...].firstIndex(of: 0x01) ?? bytes.count
                if keepsRecords { record.append(contentsOf: bytes[index..<end]) }
                index = end
                if end < bytes.count {
                    index += 1
                    state = .quoteInQuoted
                }
            case .quoteInQuoted:
                if bytes[index] == 0x01 {  // a doubled quote: one 0x01 in the text
                    if keepsRecords { record.append(0x01) }
                    index += 1
                    state = .quoted
                } else {
                    state = .plain  // the closing quote; the line break follows
                }
            }
        }
    }
}

/// Feeds a restore: blob contents in slices, records in batches.
final class RestoreSink: ArchiveEntrySink {
    /// Blob content goes to the database in slices of this size.
    static let sliceSize = 4 << 20
    /// A batch is sent once it holds this many bytes, even with fewer than `batchSize` records.
    static let batchBytes = 8 << 20

    let restore: ArchiveRestore
    /// The file being read, for messages.
    var file = ""
    private var entry = ArchiveEntryName.other
    private var name: String?
    private var splitter = RecordSplitter(keepsRecords: true)
    private var batch: [String] = []
    private var batchSize = 0
    private var slice: [UInt8] = []

    init(_ restore: ArchiveRestore) { self.restore = restore }

    func begin(_ name: String) throws {
        defer { self.name = name }
        guard name != self.name else { return }  // the same entry goes on from the previous part
        try finishEntry()
        entry = ArchiveEntryName(name)
        do {
            try restore.check(entry)
        } catch let error as ArchiveRestoreError {
            throw ArchiveRestoreError(error.kind, "\(file), entry \(name): \(error.description)")
        }
        if case .blob(let store, let key) = entry { try restore.beginBlob(store: store, key: key) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        switch entry {
        case .blob:
            slice.append(contentsOf: bytes)
            if slice.count >= Self.sliceSize { try flushSlice() }
        case .blobRows, .rows:
            try splitter.feed(bytes) { record in
                batch.append(String(decoding: record, as: UTF8.self))
                batchSize += record.count
                if batch.count >= ArchiveRestore.batchSize || batchSize >= Self.batchBytes { try flushBatch() }
            }
        case .manifest, .other: break
        }
    }

    /// Sends what the entry's piece left; a record may not be cut here (records entries
    /// are split between parts only at record boundaries).
    func end() throws {
        try flushSlice()
        try flushBatch()
    }

    /// Ends the last entry.
    func finish() throws { try finishEntry() }

    private func finishEntry() throws {
        guard splitter.isAtBoundary else {
            throw ArchiveFileError("\(file): entry \(name ?? "") ends inside a record")
        }
    }

    private func flushSlice() throws {
        guard !slice.isEmpty else { return }
        try restore.blobData(Data(slice))
        slice.removeAll(keepingCapacity: true)
    }

    private func flushBatch() throws {
        guard !batch.isEmpty else { return }
        try restore.insert(batch, into: entry)
        batch.removeAll(keepingCapacity: true)
        batchSize = 0
    }
}

/// Writes entries under a directory: never over an existing file, never outside it; an
/// entry seen again in a later part is appended to. `removeWritten` undoes a failed run.
final class ExtractSink: ArchiveEntrySink {
    let directory: String
    /// The part being read (1-based): its manifest is written as manifest_partN.json after the first.
    var part = 1
    private var written: [String] = []
    private var writtenSet = Set<String>()
    private var madeDirectories: [String] = []
    private var descriptor: Int32 = -1
    private var path = ""

    /// Checks `--to`: an existing directory, or a path whose parent is one (made later).
    init(directory: String) throws {
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
        self.directory = absolute
    }

    var filesWritten: Int { written.count }

    /// Makes the directory if it does not exist yet (mode 0700).
    func createDirectory() throws {
        if !FileManager.default.fileExists(atPath: directory) { try makeDirectory(directory) }
    }

    /// A relative path with no empty, `.` or `..` part, no backslash and no NUL.
    static func isSafe(_ name: String) -> Bool {
        guard !name.isEmpty, !name.hasPrefix("/"), !name.contains("\\"), !name.contains("\u{0}") else {
            return false
        }
        return name.split(separator: "/", omittingEmptySubsequences: false).allSatisfy {
            !$0.isEmpty && $0 != "." && $0 != ".."
        }
    }

    func begin(_ name: String) throws {
        guard Self.isSafe(name) else {
            throw ArchiveFileError(
                "refusing the entry \"\(name)\": an absolute name, or one with an empty, . or .. part, would land "
                    + "outside \(directory)")
        }
        let relative = name == ArchiveLayout.manifest && part > 1 ? "manifest_part\(part).json" : name
        path = directory + "/" + relative
        if writtenSet.contains(relative) {
            descriptor = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC)
        } else {
            let parts = relative.split(separator: "/").dropLast()
            var parent = directory
            for part in parts {
                parent += "/" + part
                try ensureDirectory(parent)
            }
            descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if descriptor >= 0 {
                written.append(path)
                writtenSet.insert(relative)
            } else if errno == EEXIST {
                throw ArchiveFileError("refusing to overwrite \(path), which exists; extract into another directory")
            }
        }
        guard descriptor >= 0 else { throw Self.posix("cannot create \(path)") }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let count = writeBytes(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if count < 0 {
                if errno == EINTR { continue }
                throw Self.posix("cannot write \(path)")
            }
            offset += count
        }
    }

    func end() throws {
        let status = close(descriptor)
        descriptor = -1
        if status != 0 { throw Self.posix("cannot write \(path)") }
    }

    /// Removes every file and directory this run made, newest first.
    func removeWritten() {
        if descriptor >= 0 { _ = close(descriptor) }
        descriptor = -1
        for file in written.reversed() { unlink(file) }
        for directory in madeDirectories.reversed() { rmdir(directory) }
        written = []
        madeDirectories = []
    }

    /// `path` exists as a real directory (not a link), or is made now.
    private func ensureDirectory(_ path: String) throws {
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw ArchiveFileError("\(path) exists and is not a directory; extract into another directory")
            }
            return
        }
        try makeDirectory(path)
    }

    private func makeDirectory(_ path: String) throws {
        guard mkdir(path, 0o700) == 0 else { throw Self.posix("cannot create the directory \(path)") }
        madeDirectories.append(path)
    }

    private static func posix(_ what: String) -> ArchiveFileError {
        ArchiveFileError("\(what): \(String(cString: strerror(errno)))")
    }
}

/// `write(2)`, under a name the sinks' own `write` does not hide.
private func writeBytes(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}
