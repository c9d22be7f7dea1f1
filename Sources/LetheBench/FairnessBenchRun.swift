import Foundation
import LetheCLI
import LetheConfiguration
import Postgres
import Retention
import Store

/// One `lethe bench fairness` session: the template's build and the two measurements.
struct FairnessBenchRun {
    let bench: FairnessBench
    let conninfo: String
    let admin: ConnectionThread

    /// The big tenant's account; the small ones are 2 … small tenants + 1.
    static let bigAccount = 1

    struct Result {
        var withBig: Bool
        /// Seconds from the enqueue to each small tenant's last deletion batch.
        var finish: [Double]
        /// Seconds from the enqueue to each small tenant's task's (last) claim.
        var firstClaim: [Double]
        var bigRows: Int
        var bigClaims: Int
        var smallRows: Int
        var cost: BenchCost

        var name: String { withBig ? "with the big tenant" : "alone" }

        var progressLine: String {
            "\(name): \(finish.count) small tenants finished, p99 \(String(format: "%.2f s", Self.percentile(finish, 0.99))); "
                + (withBig ? "big tenant \(bigRows) rows in \(bigClaims) claims meanwhile; " : "") + cost.summary
        }

        /// Nearest-rank percentile (0 when empty).
        static func percentile(_ values: [Double], _ p: Double) -> Double {
            let sorted = values.sorted()
            guard !sorted.isEmpty else { return 0 }
            return sorted[min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))]
        }
    }

    /// The registry the workers and the template share.
    var registryYAML: String { RetentionBench.registry(batchSize: bench.batchSize) }

    /// Migrations, the example application, the big tenant and the small ones, all expired;
    /// no Lethe accounts yet (each measurement adds the ones it runs).
    func build(template: String, example: URL, context: CommandContext) async throws {
        let (big, small, smallConversations, messages) = (
            bench.bigConversations, bench.smallTenants, bench.smallConversations, bench.messages
        )
        Console.line(
            "lethe bench fairness: 1 tenant with \(big) expired conversations, \(small) with \(smallConversations) each, "
                + "\(messages) messages per conversation")
        let files = try MigrationSet.resolve(flag: nil, configured: context.configuration.migrationsDirectory).files
        let schema = try String(contentsOf: example.appendingPathComponent("schema.sql"), encoding: .utf8)
        let seed = try String(contentsOf: example.appendingPathComponent("seed.sql"), encoding: .utf8)
        let registry = try Configuration.parse(registryYAML, source: "bench")
        let started = ContinuousClock.now
        let rows = try await RetentionBench.withThread(
            conninfo: ConnectionString.withDatabase(conninfo, template), name: "lethe-bench-build"
        ) { database in
            try await database.run { connection in
                try Migrator(files: files).apply(connection)
                try connection.executeScript(schema)
                try connection.executeScript(seed)
                // Everything ended more than a year ago: all of it is expired under a 1y policy.
                try connection.execute(
                    "SELECT app.seed_tenant($1, $2::int, $3::int, interval '1 year', now() - interval '400 days', false)",
                    [Self.bigAccount, big, messages])
                try connection.execute(
                    """
                    SELECT app.seed_tenant(a, $2::int, $3::int, interval '1 year', now() - interval '400 days', false)
                    FROM generate_series(2, $1::int + 1) a
                    """, [small, smallConversations, messages])
                _ = try RegistryInForce.syncBenchmark(registry, on: connection)
                try connection.execute("VACUUM ANALYZE")
                try connection.execute("CHECKPOINT")
                return try connection.query(
                    """
                    SELECT count(*) FILTER (WHERE account_id = $1), count(*) FILTER (WHERE account_id <> $1)
                    FROM (SELECT account_id FROM app.conversations
                          UNION ALL SELECT account_id FROM app.messages) r
                    """, [Self.bigAccount]
                )[0].decode((Int, Int).self)
            }
        }
        Console.line(
            "  built \(template) in \(DemoCommand.seconds(ContinuousClock.now - started)): big tenant \(rows.0) "
                + "conversations and messages, the small ones \(rows.1 / max(small, 1)) each (attachments and blobs besides)"
        )
    }

    /// One measurement on the clone `database`: accounts added (the big one first when
    /// `withBig`), their tasks enqueued, a coordinator and the workers run until every small
    /// tenant's retention task has succeeded.
    func measure(database: String, withBig: Bool) async throws -> Result {
        let conninfo = ConnectionString.withDatabase(self.conninfo, database)
        let small = bench.smallTenants
        return try await RetentionBench.withThread(conninfo: conninfo, name: "lethe-bench-fair") { db in
            let enqueuedAt = try await db.run { connection in
                if withBig { try connection.execute("SELECT lethe.add_account($1)", ["\(Self.bigAccount)"]) }
                try connection.execute(
                    "SELECT lethe.add_account(a::text) FROM generate_series(2, $1::int + 1) a ORDER BY a", [small])
                let enqueuedAt = try connection.query("SELECT clock_timestamp()::text")[0].decode(String.self, at: 0)
                try RetentionSchedule(orphanInterval: .seconds(86_400), maxAttempts: 3).enqueueDue(on: connection)
                // Only retention: orphan GC the coordinator enqueues later as it falls due.
                try connection.execute("DELETE FROM lethe.tasks WHERE kind <> 'retention'")
                return enqueuedAt
            }
            var meter = try await BenchCostMeter.start(admin)
            let fleet = try startProcesses(conninfo: conninfo)
            do {
                let deadline = ContinuousClock.now + .seconds(3600)
                while try await smallTenantsLeft(db) > 0 {
                    guard ContinuousClock.now < deadline else {
                        throw DemoFailure("small tenants unfinished after an hour")
                    }
                    guard fleet.processes.allSatisfy(\.isRunning) else {
                        throw DemoFailure("a worker or the coordinator exited during the fairness run")
                    }
                    try await meter.sample(db)
                    try await Task.sleep(for: .milliseconds(50))
                }
            } catch {
                try? fleet.stop()
                throw error
            }
            try fleet.stop()
            let cost = try await meter.finish(admin)
            return try await db.run { connection in
                try Self.result(withBig: withBig, enqueuedAt: enqueuedAt, cost: cost, on: connection)
            }
        }
    }

    /// Small tenants whose retention task has not succeeded yet.
    private func smallTenantsLeft(_ db: ConnectionThread) async throws -> Int {
        let small = bench.smallTenants
        return try await db.run {
            try $0.query(
                """
                SELECT $1::int - count(DISTINCT account_id)::int FROM lethe.tasks
                WHERE kind = 'retention' AND state = 'succeeded' AND account_id <> $2
                """, [small, "\(Self.bigAccount)"]
            )[0].decode(Int.self, at: 0)
        }
    }

    private static func result(
        withBig: Bool, enqueuedAt: String, cost: BenchCost, on connection: Connection
    ) throws -> Result {
        let big = "\(bigAccount)"
        let finish = try connection.query(
            """
            SELECT extract(epoch FROM max(deleted_at) - $1::timestamptz)::float8 FROM lethe.deletion_log
            WHERE account_id <> $2 GROUP BY account_id
            """, [enqueuedAt, big]
        ).map { try $0.decode(Double.self, at: 0) }
        let claims = try connection.query(
            """
            SELECT extract(epoch FROM started_at - $1::timestamptz)::float8 FROM lethe.tasks
            WHERE kind = 'retention' AND state = 'succeeded' AND account_id <> $2
            """, [enqueuedAt, big]
        ).map { try $0.decode(Double.self, at: 0) }
        let (bigRows, smallRows) = try connection.query(
            """
            SELECT coalesce(sum(total_rows + blob_rows) FILTER (WHERE account_id = $1), 0)::int8,
                   coalesce(sum(total_rows + blob_rows) FILTER (WHERE account_id <> $1), 0)::int8
            FROM lethe.deletion_log
            """, [big]
        )[0].decode((Int, Int).self)
        let bigClaims = try connection.query(
            "SELECT coalesce(sum(claims), 0)::int8 FROM lethe.tasks WHERE kind = 'retention' AND account_id = $1", [big]
        )[0].decode(Int.self, at: 0)
        // Every small tenant's expired rows are gone (the seed leaves one open conversation,
        // ended_at NULL, per tenant: never expired).
        let left = try connection.query(
            "SELECT count(*)::int8 FROM app.conversations WHERE account_id <> $1 AND ended_at IS NOT NULL", [bigAccount]
        )[0].decode(Int.self, at: 0)
        guard left == 0 else { throw DemoFailure("\(left) small tenants' conversations were left; the run is void") }
        return Result(
            withBig: withBig, finish: finish, firstClaim: claims, bigRows: bigRows, bigClaims: bigClaims,
            smallRows: smallRows, cost: cost)
    }

    /// A coordinator and the workers, on a configuration file of their own.
    private func startProcesses(conninfo: String) throws -> RetentionBench.WorkerFleet {
        let config = FileManager.default.temporaryDirectory.appendingPathComponent(
            "lethe-bench-\(UUID().uuidString).yml")
        try """
        log: { level: warning }
        worker: { concurrency: \(bench.concurrency), task_budget: \(DurationText.format(bench.budget)), poll_interval: 100ms }
        coordinator: { tick_interval: 1s }
        retention: { target_batch_duration: 0 }
        \(registryYAML)
        """.write(to: config, atomically: true, encoding: .utf8)
        var processes: [Process] = []
        do {
            for arguments in [["coordinator"]] + Array(repeating: ["worker"], count: bench.processes) {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: try QueueBench.executablePath())
                process.arguments = arguments + ["--config", config.path]
                process.environment = ChildEnvironment.with(databaseURL: conninfo)
                process.standardInput = FileHandle.nullDevice
                try process.run()
                processes.append(process)
            }
        } catch {
            try? RetentionBench.WorkerFleet(processes: processes, config: config).stop()
            throw error
        }
        return RetentionBench.WorkerFleet(processes: processes, config: config)
    }

    /// The two runs side by side and the verdict against the task budget.
    static func report(_ results: [Result], budget: Duration) -> String {
        var table = TextTable(
            "RUN", "SMALL TENANTS", "ROWS EACH", "FINISH P50", "P99", "MAX", "FIRST CLAIM P50", "P99", "BIG ROWS",
            "BIG CLAIMS", "PG CPU S", "LETHE CPU S")
        func seconds(_ value: Double) -> String { String(format: "%.2f s", value) }
        for result in results {
            table.add(
                result.name, "\(result.finish.count)", "\(result.smallRows / max(result.finish.count, 1))",
                seconds(Result.percentile(result.finish, 0.5)), seconds(Result.percentile(result.finish, 0.99)),
                seconds(result.finish.max() ?? 0), seconds(Result.percentile(result.firstClaim, 0.5)),
                seconds(Result.percentile(result.firstClaim, 0.99)), result.withBig ? "\(result.bigRows)" : "-",
                result.withBig ? "\(result.bigClaims)" : "-",
                result.cost.postgresCPU.map { String(format: "%.1f", $0) } ?? "-",
                String(format: "%.1f", result.cost.letheCPU))
        }
        guard let alone = results.first(where: { !$0.withBig }), let crowded = results.first(where: \.withBig) else {
            return table.rendered
        }
        let difference = Result.percentile(crowded.finish, 0.99) - Result.percentile(alone.finish, 0.99)
        let limit = RetentionBench.seconds(budget)
        return table.rendered + "\n\n"
            + "p99 difference: \(String(format: "%+.2f s", difference)); task budget (worker.task_budget) "
            + "\(DurationText.format(budget)): \(difference <= limit ? "within one task budget" : "NOT within one task budget")"
    }
}
