import ArgumentParser
import Foundation
import LetheCLI
import LetheConfiguration
import Postgres
import Retention
import Store

/// `lethe bench retention`
struct RetentionBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retention",
        abstract: "One tenant's expired conversations: Lethe's batches beside a single cascading DELETE.",
        discussion: """
            Builds a template database (lethe_bench_ret_…) with the example application and one \
            tenant whose --conversations conversations (with messages, attachments and blobs) \
            have all expired, then clones it (CREATE DATABASE … TEMPLATE) for each measurement: \
            the single cascading DELETE … WHERE clock < cutoff, and Lethe with 1 and 2 worker \
            processes (lanes: 1 and 2; one slot each). Reports rows deleted per second, the ratio \
            to the single statement, p50/p99/max batch time and WAL bytes per deleted row. Use a \
            release build and a server of its own (WAL is measured cluster-wide).
            """)

    @OptionGroup var global: GlobalOptions
    @Option(help: "Expired conversations of the tenant.") var conversations = 1_000_000
    @Option(help: "Messages per conversation.") var messages = 9
    @Option(name: .customLong("batch-size"), help: "Root rows per Lethe batch (when --batches is not given).")
    var batchSize = 5000
    @Option(
        help: ArgumentHelp(
            "Lethe's batches to measure, comma-separated: \(RetentionBenchVariant.accepted) (default: --batch-size).",
            valueName: "list"))
    var batches: String?
    @Option(help: ArgumentHelp("Worker process counts to measure, comma-separated (default 1,2).", valueName: "list"))
    var processes: String?
    @Flag(
        help: """
            The adaptive comparison (issue 17): 2 worker processes with batches 1000,5000,adaptive:5000, unless \
            --processes or --batches say otherwise.
            """)
    var adaptive = false
    @Option(
        name: .customLong("target-batch-duration"),
        help: ArgumentHelp("The batch duration adaptive batches hold.", valueName: "duration"))
    var targetBatchDuration = "150ms"
    @OptionGroup var throttled: RetentionBenchThrottleOptions
    @Option(help: ArgumentHelp("The example application's directory.", valueName: "dir")) var example: String?
    @Flag(name: .customLong("keep-database"), help: "Do not drop the template database afterwards.")
    var keepDatabase = false
    @Option(
        name: .customLong("template"),
        help: ArgumentHelp(
            "Reuse a template database kept by an earlier run (--keep-database) instead of building one.",
            valueName: "name"))
    var reuseTemplate: String?

    var processCounts: [Int] {
        (processes ?? (adaptive ? "2" : "1,2")).split(separator: ",")
            .compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    }

    var variants: [RetentionBenchVariant] {
        (try? RetentionBenchVariant.parse(
            batches ?? (adaptive ? "1000,5000,adaptive:5000" : "\(batchSize)"), defaultRoots: batchSize)) ?? []
    }

    /// `--target-batch-duration`, checked by `validate()`.
    var target: Duration { DurationText.parse(targetBatchDuration) ?? .milliseconds(150) }

    func validate() throws {
        if let processes {
            let counts = processes.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !counts.isEmpty, counts.allSatisfy({ $0.map { (1...16).contains($0) } ?? false }) else {
                throw ValidationError("--processes \(processes) is not a list of counts from 1 to 16, e.g. 1,2")
            }
        }
        guard conversations >= 1000 else {
            throw ValidationError("--conversations \(conversations): use at least 1000")
        }
        guard (1...100_000).contains(batchSize) else { throw ValidationError("--batch-size \(batchSize): 1 to 100000") }
        if let batches { _ = try RetentionBenchVariant.parse(batches, defaultRoots: batchSize) }
        guard let target = DurationText.parse(targetBatchDuration),
            (Duration.milliseconds(10)...(.seconds(600))).contains(target)
        else {
            throw ValidationError(
                "--target-batch-duration \(targetBatchDuration): expected 10ms to 10m, \(DurationText.accepted)")
        }
        try throttled.validate()
    }

    struct Measurement {
        var name: String
        var batch: String
        var rows: Int
        var seconds: Double
        var walBytes: Double
        var batches: (p50: Double, p99: Double, max: Double, meanRoots: Double)?
        /// CPU split, lock waits and WAL of the run.
        var cost: BenchCost?
        var rate: Double { Double(rows) / max(seconds, 0.000_001) }
    }

    func run() async throws {
        let context = try CommandContext(global, label: "lethe.bench")
        guard
            let exampleDirectory = example.map(URL.init(fileURLWithPath:))
                ?? BundledDirectory.locate("examples/contact-centre", containing: "schema.sql")
        else { throw UsageError("cannot find examples/contact-centre; run from the repository or pass --example DIR") }
        let template = reuseTemplate ?? "lethe_bench_ret_\(UInt32.random(in: 0...UInt32.max))"
        let admin = context.connectionThread(name: "lethe-bench-admin")
        var clones: [String] = []
        func dropAll() async {
            for name in clones + (keepDatabase || reuseTemplate != nil ? [] : [template]) {
                _ = try? await admin.run {
                    try $0.execute("DROP DATABASE IF EXISTS \(SQLIdentifier.quote(name)) WITH (FORCE)")
                }
            }
        }
        do {
            let registryYAML = Self.registry(batchSize: batchSize)
            if reuseTemplate == nil {
                try await admin.run { try $0.execute("CREATE DATABASE \(SQLIdentifier.quote(template))") }
                try await build(
                    context: context, template: template, example: exampleDirectory, registryYAML: registryYAML)
            } else {
                Console.line("lethe bench retention: reusing template \(template)")
            }
            if !throttled.only {
                try await compare(context: context, template: template, registryYAML: registryYAML, admin: admin) {
                    clones.append($0)
                }
            }
            if throttled.enabled {
                let name = "\(template)_thr"
                clones.append(name)
                try await clone(template, as: name, admin: admin)
                try await throttledRun(
                    conninfo: ConnectionString.withDatabase(context.conninfo, name), registryYAML: registryYAML,
                    admin: admin)
                _ = try? await admin.run {
                    try $0.execute("DROP DATABASE IF EXISTS \(SQLIdentifier.quote(name)) WITH (FORCE)")
                }
            }
        } catch {
            await dropAll()
            await admin.shutdown()
            throw error
        }
        await dropAll()
        await admin.shutdown()
        if keepDatabase { Console.line("kept the template database \(template)") }
    }

    /// The side-by-side measurements on clones of `template`: the single statement, then
    /// every process count with every batch variant; prints the table. `cloned` learns each
    /// clone's name before it exists, for the cleanup.
    func compare(
        context: CommandContext, template: String, registryYAML: String, admin: ConnectionThread,
        cloned: (String) -> Void
    ) async throws {
        var results: [Measurement] = []
        let sqlClone = "\(template)_sql"
        cloned(sqlClone)
        try await clone(template, as: sqlClone, admin: admin)
        Console.line("  single statement: one transaction, no progress until it commits …")
        let single = try await singleStatement(ConnectionString.withDatabase(context.conninfo, sqlClone), admin: admin)
        Console.line("  single statement: \(single.rows) rows in \(String(format: "%.1f", single.seconds)) s")
        results.append(single)
        _ = try? await admin.run {
            try $0.execute("DROP DATABASE IF EXISTS \(SQLIdentifier.quote(sqlClone)) WITH (FORCE)")
        }
        for count in processCounts {
            for (index, variant) in variants.enumerated() {
                let name = "\(template)_p\(count)_\(index)"
                cloned(name)
                try await clone(template, as: name, admin: admin)
                let result = try await lethe(
                    conninfo: ConnectionString.withDatabase(context.conninfo, name), processes: count,
                    variant: variant, registryYAML: registryYAML, admin: admin)
                Console.line(
                    "  \(result.name), batch \(variant): \(result.rows) rows in \(String(format: "%.1f", result.seconds)) s"
                )
                if result.rows != single.rows {
                    Console.line("  warning: Lethe deleted \(result.rows) rows, the single statement \(single.rows)")
                }
                results.append(result)
                _ = try? await admin.run {
                    try $0.execute("DROP DATABASE IF EXISTS \(SQLIdentifier.quote(name)) WITH (FORCE)")
                }
            }
        }
        BenchReport.table(Self.table(results, baseline: single))
        BenchReport.line("\nWhere the time went (CPU seconds over the run; backends waiting, mean of samples):")
        BenchReport.table(Self.costTable(results))
    }

    /// The bench's registry: the example's conversations with their children and blobs
    /// (with `content`: the blob store's content column, archived as files).
    static func registry(batchSize: Int, content: String? = nil) -> String {
        """
        blob_stores:
          blobs: { table: app.blobs, key: id, account: account_id\(content.map { ", content: \($0), grace: 7d" } ?? "") }
        entity_types:
          conversations:
            table: app.conversations
            key: id
            account: account_id
            clock: ended_at
            interval: { default: 1y, min: 1d, max: 3y }
            batch_size: \(batchSize)
            blobs: [ { column: recording_blob_id } ]
            children:
              - table: app.messages
                key: id
                parent: conversation_id
                children:
                  - { table: app.message_attachments, key: id, parent: message_id, blobs: [ { column: blob_id } ] }
        """
    }

    func build(context: CommandContext, template: String, example: URL, registryYAML: String) async throws {
        let conninfo = ConnectionString.withDatabase(context.conninfo, template)
        return try await Self.withThread(conninfo: conninfo, name: "lethe-bench-build") { database in
            let files = try MigrationSet.resolve(flag: nil, configured: context.configuration.migrationsDirectory).files
            let schema = try String(contentsOf: example.appendingPathComponent("schema.sql"), encoding: .utf8)
            let seed = try String(contentsOf: example.appendingPathComponent("seed.sql"), encoding: .utf8)
            let registry = try Configuration.parse(registryYAML, source: "bench")
            let (conversations, messages) = (self.conversations, self.messages)
            Console.line(
                "lethe bench retention: \(conversations) expired conversations × \(messages) messages"
            )
            let started = ContinuousClock.now
            let settings = try await database.run { connection in
                try Migrator(files: files).apply(connection)
                try connection.executeScript(schema)
                try connection.executeScript(seed)
                // Everything ended more than a year ago: all of it is expired under a 1y policy.
                try connection.execute(
                    "SELECT app.seed_tenant(1, $1::int, $2::int, interval '1 year', now() - interval '400 days', false)",
                    [conversations, messages])
                _ = try RegistryInForce.syncBenchmark(registry, on: connection)
                try connection.execute("SELECT lethe.add_account('1')")
                try connection.execute("SELECT lethe.set_policy('1', 'conversations', '1 year')")
                try connection.execute("VACUUM ANALYZE")
                try connection.execute("CHECKPOINT")
                return try connection.query(
                    """
                    SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit'),
                           (SELECT count(*) FROM app.conversations), (SELECT count(*) FROM app.messages)
                    """
                )[0].decode((String, String, String, Int, Int).self)
            }
            BenchReport.line(
                "  built \(template) in \(DemoCommand.seconds(ContinuousClock.now - started)): \(settings.3) conversations, "
                    + "\(settings.4) messages; PostgreSQL \(settings.0), fsync=\(settings.1), synchronous_commit=\(settings.2)"
            )
        }
    }

    func clone(_ template: String, as name: String, admin: ConnectionThread) async throws {
        try await admin.run {
            try $0.execute(
                "CREATE DATABASE \(SQLIdentifier.quote(name)) TEMPLATE \(SQLIdentifier.quote(template)) STRATEGY FILE_COPY"
            )
            try $0.execute("CHECKPOINT")
        }
    }

    static func wal(_ admin: ConnectionThread) async throws -> String {
        try await admin.run { try $0.query("SELECT pg_current_wal_lsn()::text")[0].decode(String.self, at: 0) }
    }

    static func walSince(_ lsn: String, _ admin: ConnectionThread) async throws -> Double {
        try await admin.run {
            try $0.query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8", [lsn])[0]
                .decode(Double.self, at: 0)
        }
    }

    /// The baseline: one statement deleting every expired conversation with its messages,
    /// attachments and their blobs, in one transaction.
    func singleStatement(_ conninfo: String, admin: ConnectionThread) async throws -> Measurement {
        return try await Self.withThread(conninfo: conninfo, name: "lethe-bench-sql") { database in
            let lsn = try await Self.wal(admin)
            let meter = try await BenchCostMeter.start(admin)
            let started = ContinuousClock.now
            let rows = try await database.run { connection in
                try connection.query(
                    """
                    WITH roots AS (
                        DELETE FROM app.conversations c
                        WHERE c.account_id = 1 AND c.ended_at < lethe.cutoff(now(), interval '1 year')
                        RETURNING c.id, c.recording_blob_id
                    ), msgs AS (
                        DELETE FROM app.messages m USING roots r WHERE m.conversation_id = r.id RETURNING m.id
                    ), atts AS (
                        DELETE FROM app.message_attachments a USING msgs m WHERE a.message_id = m.id RETURNING a.blob_id
                    ), blobs AS (
                        DELETE FROM app.blobs b
                        WHERE b.id IN (SELECT recording_blob_id FROM roots UNION ALL SELECT blob_id FROM atts)
                        RETURNING 1
                    )
                    SELECT ((SELECT count(*) FROM roots) + (SELECT count(*) FROM msgs) + (SELECT count(*) FROM atts)
                            + (SELECT count(*) FROM blobs))::int
                    """)[0].decode(Int.self, at: 0)
            }
            let seconds = Self.seconds(ContinuousClock.now - started)
            return Measurement(
                name: "single DELETE statement", batch: "all", rows: rows, seconds: seconds,
                walBytes: try await Self.walSince(lsn, admin), cost: try await meter.finish(admin)
            )
        }
    }

    /// Runs `body` with a database thread on `conninfo`, shut down (and awaited) before this
    /// returns or throws.
    static func withThread<T>(
        conninfo: String, name: String, applicationName: String = "lethe",
        _ body: (ConnectionThread) async throws -> T
    ) async throws -> T {
        let thread = ConnectionThread(conninfo: conninfo, name: name, applicationName: applicationName)
        do {
            let value = try await body(thread)
            await thread.shutdown()
            return value
        } catch {
            await thread.shutdown()
            throw error
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Each measurement's CPU split between PostgreSQL and the workers, and the backends' waits.
    static func costTable(_ results: [Measurement]) -> TextTable {
        var table = TextTable(headers: ["METHOD", "BATCH", "ROWS/S"] + BenchCost.columns)
        for result in results {
            table.add(
                row: [result.name, result.batch, "\(Int(result.rate))"]
                    + (result.cost?.tableCells ?? BenchCost.columns.map { _ in "-" }))
        }
        return table
    }

    static func table(_ results: [Measurement], baseline: Measurement) -> TextTable {
        var table = TextTable(
            "METHOD", "BATCH", "ROWS", "SECONDS", "ROWS/S", "VS SINGLE", "ROOTS/BATCH", "BATCH P50", "P99", "MAX",
            "WAL B/ROW")
        for result in results {
            table.add(
                result.name, result.batch, "\(result.rows)", String(format: "%.1f", result.seconds),
                "\(Int(result.rate))",
                String(format: "%.2f×", result.rate / max(baseline.rate, 1)),
                result.batches.map { String(format: "%.0f", $0.meanRoots) } ?? "-",
                result.batches.map { String(format: "%.0f ms", $0.p50) } ?? "-",
                result.batches.map { String(format: "%.0f ms", $0.p99) } ?? "-",
                result.batches.map { String(format: "%.0f ms", $0.max) }
                    ?? String(format: "%.0f ms", result.seconds * 1000),
                "\(Int(result.walBytes / Double(max(result.rows, 1))))")
        }
        return table
    }
}
