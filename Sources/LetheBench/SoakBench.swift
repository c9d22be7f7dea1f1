import ArgumentParser
import Foundation
import LetheCLI
import LetheConfiguration
import Postgres
import Retention
import Store
import Synchronization

/// `lethe bench soak`
struct SoakBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Continuous ingest while retention and archiving run; samples every series to a CSV.",
        discussion: """
            Builds a scratch database (lethe_bench_soak_…) with the example application and \
            --tenants tenants whose conversations expire after a day (--archiving of them \
            archive to file:// sites first, their jobs approved as they upload), starts a \
            `lethe coordinator` and --workers `lethe worker` processes, and for --duration \
            inserts --ingest conversations a second (5 messages each, recordings on 30%) that \
            ended just over a day ago. Every --interval it samples each process's RSS, the \
            database's connections, queue depth (lethe.queue_summary), table and index sizes \
            of schemas app and lethe, dead and live tuples, WAL bytes a second, the retention \
            backlog (lethe.retention_backlog) and open archive jobs into --csv, and at the \
            end prints whether each series stayed flat: a line fitted to the last half of \
            the run may move by at most a tenth of the series' peak. \
            Benchmarks/plot_soak.py draws a PNG per series. With --throwaway-cluster it runs \
            on a private PostgreSQL (fsync off) instead of the configured server.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("How long to ingest and sample, e.g. 15m.", valueName: "duration"))
    var duration = "15m"
    @Option(help: ArgumentHelp("Time between samples, e.g. 10s.", valueName: "duration")) var interval = "10s"
    @Option(help: "Worker processes.") var workers = 3
    @Option(help: "Tenants ingested into, in turn.") var tenants = 12
    @Option(help: "Of the tenants, how many archive before deleting (file:// sites).") var archiving = 2
    @Option(help: "Conversations inserted a second.") var ingest = 20
    @Option(help: ArgumentHelp("The CSV written.", valueName: "file")) var csv = "soak.csv"
    @Option(help: ArgumentHelp("Scratch directory (default: a new one in $TMPDIR).", valueName: "dir"))
    var directory: String?
    @Option(help: ArgumentHelp("The example application's directory.", valueName: "dir")) var example: String?
    @Flag(name: .customLong("throwaway-cluster"), help: "Run on a private PostgreSQL started for the run.")
    var throwawayCluster = false
    @Flag(name: .customLong("keep-database"), help: "Do not drop the scratch database afterwards.")
    var keepDatabase = false

    func validate() throws {
        guard let total = DurationText.parse(duration), total >= .seconds(10) else {
            throw ValidationError("--duration \(duration): expected at least 10s; \(DurationText.accepted)")
        }
        guard let step = DurationText.parse(interval), step >= .seconds(1), step * 2 <= total else {
            throw ValidationError(
                "--interval \(interval): expected at least 1s and at most half of --duration; \(DurationText.accepted)")
        }
        guard (1...32).contains(workers) else { throw ValidationError("--workers \(workers): expected 1 to 32") }
        guard (1...1000).contains(tenants) else { throw ValidationError("--tenants \(tenants): expected 1 to 1000") }
        guard (0...tenants).contains(archiving) else {
            throw ValidationError("--archiving \(archiving): expected 0 to --tenants (\(tenants))")
        }
        guard (1...10_000).contains(ingest) else { throw ValidationError("--ingest \(ingest): expected 1 to 10000") }
    }

    func run() async throws {
        guard
            let exampleDirectory = example.map(URL.init(fileURLWithPath:))
                ?? BundledDirectory.locate("examples/contact-centre", containing: "schema.sql")
        else {
            throw UsageError("cannot find examples/contact-centre; run from the repository or pass --example DIR")
        }
        let work = directory ?? NSTemporaryDirectory() + "lethe-bench-soak-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(
            atPath: work, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: work) } }
        let cluster = throwawayCluster ? try DemoCluster.start() : nil
        defer { cluster?.stop(keep: false) }
        let admin: String
        let migrationsDirectory: String?
        if let cluster {
            admin = cluster.conninfo()
            migrationsDirectory = nil
        } else {
            let context = try CommandContext(global, label: "lethe.bench")
            admin = context.conninfo
            migrationsDirectory = context.configuration.migrationsDirectory
        }
        let name = "lethe_bench_soak_\(UInt32.random(in: 0...UInt32.max))"
        let run = SoakRun(
            options: self, admin: admin, database: name, work: work, example: exampleDirectory,
            migrations: try MigrationSet.resolve(flag: nil, configured: migrationsDirectory).files,
            executable: try QueueBench.executablePath())
        Console.line("lethe bench soak: scratch database \(name), scratch files in \(work)")
        try await SoakRun.admin(admin) { try $0.execute("CREATE DATABASE \(SQLIdentifier.quote(name))") }
        do {
            try await run.run()
        } catch {
            if !keepDatabase { try? await SoakRun.dropDatabase(admin, name) }
            throw error
        }
        if keepDatabase {
            Console.line("kept the database \(name)")
        } else {
            try await SoakRun.dropDatabase(admin, name)
        }
    }
}
