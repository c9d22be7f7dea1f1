import Foundation
import LetheCLI
import LetheConfiguration
import Postgres
import Retention
import Store
import Synchronization

/// One run of `lethe bench soak`: builds the scratch database, starts the fleet, ingests and
/// samples until the duration is over, then writes the CSV and prints the verdicts.
struct SoakRun: Sendable {
    let duration: Duration
    let interval: Duration
    let workers: Int
    let tenants: Int
    let archiving: Int
    let ingest: Int
    let csv: String
    let conninfo: String
    let work: String
    let example: URL
    let migrations: [MigrationFile]
    let executable: String

    init(
        options: SoakBench, admin: String, database: String, work: String, example: URL, migrations: [MigrationFile],
        executable: String
    ) {
        duration = DurationText.parse(options.duration)!
        interval = DurationText.parse(options.interval)!
        workers = options.workers
        tenants = options.tenants
        archiving = options.archiving
        ingest = options.ingest
        csv = options.csv
        conninfo = ConnectionString.withDatabase(admin, database)
        self.work = work
        self.example = example
        self.migrations = migrations
        self.executable = executable
    }

    /// The registry: conversations with messages, attachments and recordings, checked every 5 s.
    static let registryYAML = """
        blob_stores:
          blobs: { table: app.blobs, key: id, account: account_id, content: content, grace: 7d }
        entity_types:
          conversations:
            table: app.conversations
            key: id
            account: account_id
            clock: ended_at
            interval: { default: 1y, min: 1d, max: 3y }
            check_interval: 5s
            batch_size: 1000
            blobs: [ { column: recording_blob_id } ]
            children:
              - table: app.messages
                key: id
                parent: conversation_id
                children:
                  - { table: app.message_attachments, key: id, parent: message_id, blobs: [ { column: blob_id } ] }
        """

    /// Runs `body` on a connection to the admin database `conninfo`, off the cooperative pool.
    static func admin(_ conninfo: String, _ body: @escaping @Sendable (Connection) throws -> Void) async throws {
        let thread = ConnectionThread(conninfo: conninfo, name: "lethe-bench-admin", applicationName: "lethe-bench")
        do {
            try await thread.run(body)
        } catch {
            await thread.shutdown()
            throw error
        }
        await thread.shutdown()
    }

    static func dropDatabase(_ admin: String, _ name: String) async throws {
        try await Self.admin(admin) {
            try $0.execute("DROP DATABASE IF EXISTS \(SQLIdentifier.quote(name)) WITH (FORCE)")
        }
    }

    func run() async throws {
        let database = ConnectionThread(
            conninfo: conninfo, name: "lethe-bench-soak", applicationName: "lethe-bench-soak")
        let ingester = ConnectionThread(
            conninfo: conninfo, name: "lethe-bench-ingest", applicationName: "lethe-bench-ingest")
        do {
            try await soak(database, ingester)
        } catch {
            await database.shutdown()
            await ingester.shutdown()
            throw error
        }
        await database.shutdown()
        await ingester.shutdown()
    }

    private func soak(_ database: ConnectionThread, _ ingester: ConnectionThread) async throws {
        let config = try await setUp(database)
        let fleet = try SoakFleet(
            executable: executable, config: config, workers: workers,
            environment: ChildEnvironment.with(databaseURL: conninfo), logDirectory: work)
        defer { fleet.stop() }
        BenchReport.line(
            "running a coordinator and \(workers) workers; ingesting \(ingest) conversations a second into "
                + "\(tenants) tenants (\(archiving) archiving) for \(DurationText.format(duration)), "
                + "a sample every \(DurationText.format(interval))")
        let ingested = IngestCounter()
        let series = try await withThrowingTaskGroup(of: SoakSeries?.self) { group in
            group.addTask {
                try await self.ingestLoop(ingester, counter: ingested); return nil
            }
            group.addTask { try await self.sampleLoop(database, fleet: fleet, ingested: ingested) }
            var result: SoakSeries?
            while let next = try await group.next() {
                if let next {
                    result = next
                    group.cancelAll()
                }
            }
            return result!
        }
        fleet.stop()
        try series.csv.write(toFile: csv, atomically: true, encoding: .utf8)
        Console.line("\nwrote \(series.rows.count) samples to \(csv)\n")
        BenchReport.block(Self.summary(series))
    }

    /// The scratch database: migrations, the example, tenants, accounts, archive settings;
    /// returns the path of the workers' config.
    private func setUp(_ database: ConnectionThread) async throws -> String {
        let schema = try String(contentsOf: example.appendingPathComponent("schema.sql"), encoding: .utf8)
        let seed = try String(contentsOf: example.appendingPathComponent("seed.sql"), encoding: .utf8)
        let parsed = try Configuration.parse(Self.registryYAML, source: "soak")
        let masterKeyText = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        let masterKeyPath = work + "/master.key"
        guard
            FileManager.default.createFile(
                atPath: masterKeyPath, contents: Data((masterKeyText + "\n").utf8),
                attributes: [.posixPermissions: 0o600])
        else { throw DemoFailure("cannot write \(masterKeyPath)") }
        let administration = ArchiveAdministration(masterKey: try MasterKey(text: masterKeyText, source: masterKeyPath))
        let archiveKey = "Soak-" + UUID().uuidString.prefix(13) + "-7q"
        let (tenants, archiving, migrations, work) = (self.tenants, self.archiving, self.migrations, self.work)
        try await database.run { connection in
            try Migrator(files: migrations).apply(connection)
            try connection.executeScript(schema)
            try connection.executeScript(seed)
            _ = try RegistryInForce.syncBenchmark(parsed, on: connection)
            for account in 1...tenants {
                // A month of current conversations each: what the application keeps.
                _ = try connection.query(
                    "SELECT app.seed_tenant($1::bigint, 300, 5, interval '30 days', now() - interval '1 hour', false)",
                    [account])
                try connection.execute("SELECT lethe.add_account($1)", ["\(account)"])
                try connection.execute("SELECT lethe.set_policy($1, 'conversations', '1 day')", ["\(account)"])
            }
            for account in archiving > 0 ? Array(1...archiving) : [] {
                let site = work + "/site-\(account)"
                try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: true)
                _ = try administration.addSite(
                    account: "\(account)", url: "file://\(site)", identityFile: nil, secret: nil,
                    knownHostsFile: nil, on: connection)
                var change = ArchiveSettingsChange()
                change.key = archiveKey
                change.enabled = true
                change.autoDelete = false
                _ = try administration.update(account: "\(account)", change, on: connection)
            }
            try connection.execute("VACUUM ANALYZE")
        }
        let config = work + "/lethe.yml"
        try """
        log: { level: warning }
        coordinator: { tick_interval: 1s }
        worker: { concurrency: 2, poll_interval: 500ms }
        archive:
          master_key_file: \(masterKeyPath)
          spool_directory: \(work)/spool
        \(Self.registryYAML)
        """.write(toFile: config, atomically: true, encoding: .utf8)
        return config
    }

    /// Every second until cancelled: `ingest` conversations for the next tenant, ended just
    /// over a day ago (expired at once under the 1-day policy); for the archiving tenants, a
    /// job started when none is open and the files of uploaded jobs approved for deletion.
    private func ingestLoop(_ ingester: ConnectionThread, counter: IngestCounter) async throws {
        var account = 0
        var tick = 0
        let (ingest, tenants, archiving) = (self.ingest, self.tenants, self.archiving)
        while !Task.isCancelled {
            account = account % tenants + 1
            tick += 1
            let current = account
            let archive = tick % 5 == 0 && archiving > 0
            let rows = try await ingester.run { connection in
                let rows = try connection.query(
                    """
                    SELECT app.seed_tenant($1::bigint, $2::int, 5, interval '1 hour',
                                           now() - interval '1 day' - interval '1 minute', false)
                    """, [current, ingest])[0].decode(Int.self, at: 0)
                if archive {
                    try connection.execute(
                        """
                        SELECT lethe.start_archive_job(a::text) FROM generate_series(1, $1::int) a
                        WHERE NOT EXISTS (SELECT 1 FROM lethe.open_archive_jobs o WHERE o.account_id = a::text)
                        """, [archiving])
                    try connection.execute(
                        """
                        SELECT lethe.approve_archive_deletion(min(f.id)) FROM lethe.archive_jobs j
                        JOIN lethe.archive_files f ON f.job_id = j.job_id
                        WHERE j.state = 'uploaded' AND j.approved_at IS NULL GROUP BY j.job_id
                        """)
                }
                return rows
            }
            counter.rows.add(rows, ordering: .relaxed)
            try? await Task.sleep(for: .seconds(1))  // cancelled: the loop ends
        }
    }

    /// Samples every `interval` for `duration`; fails at once when a child process exits.
    private func sampleLoop(
        _ database: ConnectionThread, fleet: SoakFleet, ingested: IngestCounter
    ) async throws
        -> SoakSeries
    {
        let processes = ["coordinator_rss_mb"] + (1...workers).map { "worker\($0)_rss_mb" }
        var series = SoakSeries(
            columns: ["elapsed_s"] + processes + SoakSampler.databaseColumns + ["wal_mb_per_s", "ingested_rows"],
            counters: ["ingested_rows", "deleted_rows"])
        let started = ContinuousClock.now
        var previous: (at: ContinuousClock.Instant, wal: Double)?
        while true {
            if let exited = fleet.exited { throw DemoFailure("a soak process stopped early: \(exited)") }
            let now = ContinuousClock.now
            let (values, wal) = try await database.run { try SoakSampler.database(on: $0) }
            let rss = ([fleet.coordinator] + fleet.workers).map { SoakSampler.residentMB($0.processIdentifier) }
            let walRate = previous.map { (wal - $0.wal) / 1e6 / RetentionBench.seconds(now - $0.at) } ?? 0
            previous = (now, wal)
            let elapsed = RetentionBench.seconds(now - started)
            series.append(
                [elapsed.rounded()] + rss + values + [walRate, Double(ingested.rows.load(ordering: .relaxed))])
            let workerRSS = rss.dropFirst().map { String(format: "%.0f", $0) }.joined(separator: "/")
            Console.line(
                String(format: "  %4.0f s: worker RSS ", elapsed) + workerRSS
                    + String(
                        format: " MB, %.0f connections, %.0f due, backlog %.0f rows, %d ingested, %.0f deleted",
                        values[0], values[1], values[10], ingested.rows.load(ordering: .relaxed), values[12]))
            if now - started >= duration { return series }
            try await Task.sleep(until: min(started + duration, now + interval), clock: .continuous)
        }
    }

    /// The verdict table: each series' mean and slope per minute over the first and the last half.
    static func summary(_ series: SoakSeries) -> String {
        var table = TextTable(
            "SERIES", "FIRST HALF MEAN", "LAST HALF MEAN", "SLOPE/MIN FIRST", "SLOPE/MIN LAST", "VERDICT")
        for verdict in series.verdicts {
            table.add(
                verdict.name, String(format: "%.1f", verdict.firstMean), String(format: "%.1f", verdict.lastMean),
                String(format: "%+.2f", verdict.firstSlope), String(format: "%+.2f", verdict.lastSlope), verdict.verdict
            )
        }
        let flat = series.verdicts.filter { $0.verdict == "flat" }.count
        return table.rendered + "\n\(flat) of \(series.verdicts.count) series flat over the last half "
            + "(a line fitted to it moves by at most a tenth of the series' peak)"
    }
}

/// Rows inserted by the ingest loop so far, read by the sampler.
final class IngestCounter: Sendable {
    let rows = Atomic<Int>(0)
}
