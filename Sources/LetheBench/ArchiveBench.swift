import ArgumentParser
import BackupSites
import Foundation
import LetheCLI
import LetheConfiguration
import Postgres
import Store

/// `lethe bench archive`
struct ArchiveBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "archive",
        abstract:
            "Archiving end to end beside an operator's script, upload beside OpenSSH's sftp, a worker's peak RSS.",
        discussion: """
            Builds a scratch database (lethe_bench_arc_…) with the example application, then \
            runs each part --runs times, alternating Lethe and its baseline:

              archive  End to end, for a JSON-heavy tenant (about --records of messages of
                       made-up sentences) and a blob-heavy one (--recordings of random
                       bytes): a `lethe worker --until-idle` process takes a new archive
                       job from planning through packing to uploaded on --sftp (the
                       steps from the job's timestamps), beside the script an operator
                       would write instead, one step at a time: `psql \\copy` of the same
                       rows as JSON lines and the blobs' bytes to files, bsdtar with the
                       same encryption and --compression-level, OpenSSH `sftp put`. The
                       headline is the script's seconds ÷ Lethe's.
              upload   A --upload file of random bytes to --sftp: Lethe's SFTP site
                       (temporary name, fsync, rename, size check), and OpenSSH's sftp
                       `put` with its default settings. Both include opening the
                       connection.
              memory   For each size in --memory, a tenant whose expired conversations hold
                       that much data, half JSON records and half incompressible
                       recordings: one `lethe worker --until-idle` process archives them
                       and uploads the archive to a file:// site while its peak RSS
                       (VmHWM) is sampled, against the goal of 100 MB.

            bsdtar reads the (throwaway) key from its stdin in a session of its own, and psql \
            reads the connection from a service file (mode 0600); no key or password is ever on \
            a command line. Use a release build.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(
        help: ArgumentHelp("JSON records of the archive part's first tenant (0: none), e.g. 200MB.", valueName: "size"))
    var records = "200MB"
    @Option(
        help: ArgumentHelp("Recordings of the archive part's second tenant (0: none), e.g. 1GB.", valueName: "size"))
    var recordings = "1GB"
    @Option(name: .customLong("compression-level"), help: "Deflate level for Lethe and bsdtar alike (0-9).")
    var compressionLevel = 1
    @Option(help: "Measurements per part, alternating Lethe and the baseline.") var runs = 3
    @Option(help: ArgumentHelp("Size of the file both uploaders send.", valueName: "size")) var upload = "500MB"
    @Option(help: ArgumentHelp("The upload part's server: sftp://user@host:port/directory.", valueName: "url"))
    var sftp: String?
    @Option(help: ArgumentHelp("Private key for --sftp (ed25519 or ECDSA, no passphrase).", valueName: "file"))
    var identity: String?
    @Option(name: .customLong("known-hosts"), help: ArgumentHelp("known_hosts for --sftp.", valueName: "file"))
    var knownHosts: String?
    @Option(help: ArgumentHelp("Archive sizes for the memory part, comma-separated.", valueName: "sizes"))
    var memory = "1GB"
    @Option(help: ArgumentHelp("The parts to run, comma-separated: archive, upload, memory.", valueName: "parts"))
    var only = "archive,upload,memory"
    @Option(help: ArgumentHelp("Scratch directory (default: a new one in $TMPDIR).", valueName: "dir"))
    var directory: String?
    @Option(help: ArgumentHelp("The example application's directory.", valueName: "dir")) var example: String?
    @Flag(name: .customLong("keep-database"), help: "Do not drop the scratch database afterwards.")
    var keepDatabase = false

    enum Part: String, CaseIterable { case archive, upload, memory }

    var parts: [Part] {
        only.split(separator: ",").compactMap { Part(rawValue: $0.trimmingCharacters(in: .whitespaces)) }
    }
    var memorySizes: [Int64] { memory.split(separator: ",").compactMap { ByteSizeText.parse(String($0)) } }

    func validate() throws {
        let names = only.split(separator: ",")
        guard !names.isEmpty, parts.count == names.count else {
            throw ValidationError("--only \(only): expected a comma-separated list of archive, upload, memory")
        }
        guard let bytes = ByteSizeText.parse(records), bytes == 0 || bytes >= 1_000_000 else {
            throw ValidationError(
                "--records \(records): expected 0 or a size of at least 1MB; \(ByteSizeText.accepted)")
        }
        guard let blobs = ByteSizeText.parse(recordings),
            blobs == 0 || blobs >= Int64(ArchiveBenchDatabase.recordingSize)
        else {
            throw ValidationError(
                "--recordings \(recordings): expected 0 or a size of at least 4MiB; \(ByteSizeText.accepted)")
        }
        guard bytes + blobs > 0 || !parts.contains(.archive) else {
            throw ValidationError("--records 0 and --recordings 0 leave the archive part nothing to archive")
        }
        guard let uploadBytes = ByteSizeText.parse(upload), uploadBytes >= 1_000_000 else {
            throw ValidationError("--upload \(upload): expected a size of at least 1MB; \(ByteSizeText.accepted)")
        }
        guard memorySizes.count == memory.split(separator: ",").count,
            memorySizes.allSatisfy({ $0 >= Int64(ArchiveBenchDatabase.recordingSize) })
        else {
            throw ValidationError(
                "--memory \(memory): expected sizes of at least 4MiB, comma-separated; \(ByteSizeText.accepted)")
        }
        guard (0...9).contains(compressionLevel) else {
            throw ValidationError("--compression-level \(compressionLevel): expected 0 to 9")
        }
        guard runs >= 1 else { throw ValidationError("--runs \(runs): expected at least 1") }
        if parts.contains(.upload) || parts.contains(.archive) {
            guard let sftp, identity != nil, knownHosts != nil else {
                throw ValidationError(
                    "the archive and upload parts need --sftp sftp://user@host:port/dir, --identity FILE and "
                        + "--known-hosts FILE (or run only the memory part: --only memory)")
            }
            do {
                guard try BackupSiteURL(parsing: sftp).scheme == .sftp else {
                    throw ValidationError("--sftp \(sftp): expected an sftp:// URL")
                }
            } catch let error as BackupSiteURLError {
                throw ValidationError("--sftp: \(error)")
            }
        }
    }

    /// --sftp with its key files (validate checked they are there).
    func site() throws -> ArchiveBenchRun.SFTPTarget {
        ArchiveBenchRun.SFTPTarget(
            url: try BackupSiteURL(parsing: sftp!), text: sftp!,
            credentials: SiteCredentials(identityFile: identity, knownHostsFile: knownHosts))
    }

    func run() async throws {
        let context = try CommandContext(global, label: "lethe.bench")
        guard
            let exampleDirectory = example.map(URL.init(fileURLWithPath:))
                ?? BundledDirectory.locate("examples/contact-centre", containing: "schema.sql")
        else {
            throw UsageError("cannot find examples/contact-centre; run from the repository or pass --example DIR")
        }
        let tools = ["/usr/bin/bsdtar", "/usr/bin/sftp", "/usr/bin/setsid", "/usr/bin/psql"]
        for tool in tools where !FileManager.default.isExecutableFile(atPath: tool) {
            throw UsageError(
                "\(tool) is missing: the baselines need it (apt-get install libarchive-tools openssh-client postgresql-client)"
            )
        }
        let work = directory ?? NSTemporaryDirectory() + "lethe-bench-archive-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(
            atPath: work, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: work) } }

        let name = "lethe_bench_arc_\(UInt32.random(in: 0...UInt32.max))"
        Console.line("lethe bench archive: scratch database \(name), scratch files in \(work)")
        let database = try await ArchiveBenchDatabase.create(
            name: name, context: context, example: exampleDirectory, directory: work)
        do {
            let settings = try await database.thread.run { connection in
                try connection.query(
                    "SELECT current_setting('server_version'), current_setting('fsync'), current_setting('shared_buffers')"
                )[0].decode((String, String, String).self)
            }
            BenchReport.line("PostgreSQL \(settings.0), fsync=\(settings.1), shared_buffers=\(settings.2)\n")
            var tables: [TextTable] = []
            let run = ArchiveBenchRun(
                database: database, work: work, compressionLevel: compressionLevel, runs: runs,
                executable: try QueueBench.executablePath())
            for part in parts {
                switch part {
                case .archive:
                    tables.append(
                        try await run.endToEnd(
                            records: ByteSizeText.parse(records)!, recordings: ByteSizeText.parse(recordings)!,
                            site: try site()))
                case .upload:
                    tables.append(try await run.upload(size: ByteSizeText.parse(upload)!, site: try site()))
                case .memory:
                    tables.append(try await run.memory(sizes: memorySizes))
                }
            }
            tables.forEach(BenchReport.table)
        } catch {
            if !keepDatabase { await database.drop(context: context) }
            throw error
        }
        if keepDatabase {
            await database.thread.shutdown()
            Console.line("kept the database \(name)")
        } else {
            await database.drop(context: context)
        }
    }
}
