import Foundation
import LetheCLI
import LetheConfiguration
import Postgres
import Retention
import Store

/// Lethe's side of `lethe bench retention`: worker processes deleting a clone's backlog.
extension RetentionBench {
    /// Running `lethe worker` processes and the configuration file they read.
    struct WorkerFleet {
        var processes: [Process]
        var config: URL

        /// SIGTERM (each drains its batch and exits 0), waits, removes the configuration;
        /// throws when one exited otherwise.
        func stop() throws {
            for worker in processes where worker.isRunning { worker.terminate() }
            for worker in processes { worker.waitUntilExit() }
            try? FileManager.default.removeItem(at: config)
            if let failed = processes.first(where: { $0.terminationStatus != 0 }) {
                throw DemoFailure("a worker exited with status \(failed.terminationStatus)")
            }
        }
    }

    /// Enqueues the clone's retention tasks (`variant.roots` per batch, `processes` lanes) and
    /// starts `processes` workers (one slot each). The workers' registry (from their
    /// configuration, which they sync from) has the same batch size: a run once measured
    /// `--batch-size` under every variant's name. `throttle` is the configuration's
    /// `throttle:` block (nil: the defaults).
    func startWorkers(
        conninfo: String, processes: Int, variant: RetentionBenchVariant, registryYAML: String,
        throttle: String? = nil, logLevel: String = "warning", database: ConnectionThread
    ) async throws -> WorkerFleet {
        let config = FileManager.default.temporaryDirectory.appendingPathComponent(
            "lethe-bench-\(UUID().uuidString).yml")
        // 0 turns the adaptive size off: every batch is the type's batch_size.
        let target = variant.adaptive ? DurationText.format(self.target) : "0"
        let registryText = Self.registry(batchSize: variant.roots)
            .replacingOccurrences(of: "    batch_size:", with: "    lanes: \(processes)\n    batch_size:")
        try """
        log: { level: \(logLevel) }
        worker: { concurrency: 1, task_budget: 1h, poll_interval: 100ms }
        retention: { max_batches: 1000000, target_batch_duration: \(target) }
        \(throttle.map { "throttle: \($0)" } ?? "")
        \(registryText)
        """.write(to: config, atomically: true, encoding: .utf8)
        let registry = try Configuration.parse(registryText, source: "bench")
        try await database.run { connection in
            // Workers run the registry in force (the text the last sync recorded), not their
            // file's: a sync of this variant's registry, or every variant runs the template's
            // batch size (a run measured 5,000 roots under the name 1,000).
            _ = try RegistryInForce.syncBenchmark(registry, on: connection)
            try RetentionSchedule(orphanInterval: .seconds(86_400), maxAttempts: 3).enqueueDue(on: connection)
            // Only the retention lanes: orphan GC is not part of this measurement.
            try connection.execute("DELETE FROM lethe.tasks WHERE kind <> 'retention'")
        }
        var workers: [Process] = []
        do {
            for _ in 0..<processes {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: try QueueBench.executablePath())
                process.arguments = ["worker", "--until-idle", "--config", config.path]
                process.environment = ChildEnvironment.with(databaseURL: conninfo)
                process.standardInput = FileHandle.nullDevice
                try process.run()
                workers.append(process)
            }
        } catch {
            try? WorkerFleet(processes: workers, config: config).stop()
            throw error
        }
        return WorkerFleet(processes: workers, config: config)
    }

    /// Whether a retention task is left unfinished. Not `--until-idle`'s own exit: a batch
    /// that deletes makes the account's orphan GC due, which only a coordinator enqueues, so
    /// a worker alone would wait for it forever.
    static func retentionLeft(_ database: ConnectionThread) async throws -> Bool {
        try await database.run { connection in
            try connection.query(
                "SELECT EXISTS (SELECT 1 FROM lethe.tasks WHERE kind = 'retention' AND state IN ('available', 'running', 'failed'))"
            )[0].decode(Bool.self, at: 0)
        }
    }

    /// Rows deleted so far (committed batches).
    static func rowsDeleted(_ database: ConnectionThread) async throws -> Int {
        try await database.run {
            try $0.query(
                "SELECT coalesce(sum(total_rows + blob_rows), 0)::int8 FROM lethe.deletion_records WHERE entity_type = 'conversations'"
            )[0].decode(Int.self, at: 0)
        }
    }

    /// Lethe: `processes` worker processes (one slot each) on as many lanes, batches as `variant` says.
    func lethe(
        conninfo: String, processes: Int, variant: RetentionBenchVariant, registryYAML: String,
        admin: ConnectionThread
    ) async throws -> Measurement {
        return try await Self.withThread(conninfo: conninfo, name: "lethe-bench-lethe") { database in
            let lsn = try await Self.wal(admin)
            var meter = try await BenchCostMeter.start(admin)
            let started = ContinuousClock.now
            let fleet = try await startWorkers(
                conninfo: conninfo, processes: processes, variant: variant, registryYAML: registryYAML,
                database: database)
            var reported = started
            do {
                while fleet.processes.contains(where: \.isRunning), try await Self.retentionLeft(database) {
                    try await Task.sleep(for: .milliseconds(20))
                    try await meter.sample(database)
                    if ContinuousClock.now - reported >= .seconds(10) {
                        reported = .now
                        let rows = try await Self.rowsDeleted(database)
                        Console.line(
                            "    … \(rows) rows after \(String(format: "%.0f", Self.seconds(reported - started))) s")
                    }
                }
            } catch {
                try? fleet.stop()
                throw error
            }
            let seconds = Self.seconds(ContinuousClock.now - started)
            try fleet.stop()
            let cost = try await meter.finish(admin)
            let walBytes = try await Self.walSince(lsn, admin)
            let (rows, p50, p99, maximum, roots) = try await database.run { connection in
                try connection.query(
                    """
                    SELECT coalesce(sum(total_rows + blob_rows), 0)::int,
                           percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms),
                           percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms), max(duration_ms),
                           avg(root_rows)::float8
                    FROM lethe.deletion_log WHERE entity_type = 'conversations'
                    """)[0].decode((Int, Double?, Double?, Double?, Double?).self)
            }
            return Measurement(
                name: "lethe, \(processes) worker process\(processes == 1 ? "" : "es")", batch: variant.description,
                rows: rows, seconds: seconds, walBytes: walBytes,
                batches: (p50 ?? 0, p99 ?? 0, maximum ?? 0, roots ?? 0), cost: cost)
        }
    }
}
