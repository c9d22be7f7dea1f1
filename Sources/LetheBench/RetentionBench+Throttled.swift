import Foundation
import LetheCLI
import Postgres
import Retention

/// The throttled run of `lethe bench retention`: how fast the deletion rate drops when the
/// database comes under pressure and how fast it recovers after.
extension RetentionBench {
    /// One sample of the rows deleted so far.
    struct ThrottleSample {
        var seconds: Double
        var rows: Int
        var pressure: Bool
        var overLimit: Bool
    }

    /// Workers (the largest process count, the first adaptive variant or adaptive batches of
    /// --batch-size) delete the clone at `conninfo`'s backlog; `pressureAt` seconds in, the
    /// bench puts the database under pressure for `pressureFor` seconds; the rows deleted are
    /// sampled every 250 ms into the CSV file, and the drop and recovery measured from the
    /// deletion log's batch times.
    func throttledRun(conninfo: String, registryYAML: String, admin: ConnectionThread) async throws {
        let options = throttled
        let processes = processCounts.max() ?? 2
        let variant = variants.first(where: \.adaptive) ?? RetentionBenchVariant(roots: batchSize, adaptive: true)
        BenchReport.line(
            "  throttled run: \(processes) worker process\(processes == 1 ? "" : "es"), batch \(variant), "
                + "check interval \(DurationText.format(options.interval)), floor \(options.floor) roots/s"
                + "\(options.floor == 0 ? " (pause)" : ""); from +\(options.pressureAt) s for \(options.pressureFor) s: "
                + options.pressureDescription)
        try await Self.withThread(conninfo: conninfo, name: "lethe-bench-sampler") { database in
            // Not lethe…: Lethe leaves its own sessions out of the transaction age.
            try await Self.withThread(
                conninfo: conninfo, name: "lethe-bench-application", applicationName: "contact-centre"
            ) { application in
                if options.pressure == .lag {
                    try await application.run {
                        try $0.execute("CREATE TABLE public.lethe_bench_lag (seconds float8 NOT NULL)")
                        try $0.execute("INSERT INTO public.lethe_bench_lag VALUES (0)")
                    }
                }
                let fleet = try await startWorkers(
                    conninfo: conninfo, processes: processes, variant: variant, registryYAML: registryYAML,
                    throttle: options.throttleBlock, logLevel: "notice", database: database)
                let result: (samples: [ThrottleSample], applied: String, released: String)
                do {
                    result = try await sample(database: database, application: application, workers: fleet)
                } catch {
                    try? fleet.stop()
                    throw error
                }
                try fleet.stop()
                let rowsPerRoot = try await database.run {
                    try $0.query(
                        "SELECT (sum(total_rows + blob_rows)::float8 / greatest(sum(root_rows), 1))::float8 FROM lethe.deletion_records"
                    )[0].decode(Double?.self, at: 0)
                }
                try writeCSV(result.samples, variant: variant, processes: processes, rowsPerRoot: rowsPerRoot ?? 0)
                try await report(result.samples, applied: result.applied, released: result.released, database: database)
            }
        }
    }

    /// Samples every 250 ms until the pressure has been gone as long as it lasted (or the
    /// backlog is gone); applies and releases the pressure on `application`. Returns the
    /// samples and the database's clock when the pressure began and ended.
    private func sample(
        database: ConnectionThread, application: ConnectionThread, workers: WorkerFleet
    ) async throws -> (samples: [ThrottleSample], applied: String, released: String) {
        let options = throttled
        let (start, end) = (Double(options.pressureAt), Double(options.pressureAt + options.pressureFor))
        let started = ContinuousClock.now
        var samples: [ThrottleSample] = []
        var (applied, released): (String?, String?) = (nil, nil)
        var tick = 0
        while workers.processes.contains(where: \.isRunning) {
            let elapsed = Self.seconds(ContinuousClock.now - started)
            if applied == nil, elapsed >= start {
                applied = try await application.run { connection in
                    switch options.pressure {
                    case .transaction:
                        // An xid, then idle in transaction: what an application's forgotten transaction looks like.
                        try connection.execute("BEGIN")
                        _ = try connection.query("SELECT txid_current()")
                    case .lag: try connection.execute("UPDATE public.lethe_bench_lag SET seconds = 60")
                    }
                    return try connection.query("SELECT clock_timestamp()::text")[0].decode(String.self, at: 0)
                }
                Console.line("    +\(String(format: "%.1f", elapsed)) s: pressure on")
            }
            if applied != nil, released == nil, elapsed >= end {
                released = try await application.run { connection in
                    switch options.pressure {
                    case .transaction: try connection.execute("ROLLBACK")
                    case .lag: try connection.execute("UPDATE public.lethe_bench_lag SET seconds = 0")
                    }
                    return try connection.query("SELECT clock_timestamp()::text")[0].decode(String.self, at: 0)
                }
                Console.line("    +\(String(format: "%.1f", elapsed)) s: pressure off")
            }
            let rows = try await Self.rowsDeleted(database)
            let pressure = applied != nil && released == nil
            let limitAt =
                start + (options.pressure == .transaction ? Double(RetentionBenchThrottleOptions.limitSeconds) : 0)
            samples.append(
                ThrottleSample(
                    seconds: Self.seconds(ContinuousClock.now - started), rows: rows, pressure: pressure,
                    overLimit: pressure && elapsed >= limitAt))
            if released != nil, elapsed >= end + Double(options.pressureFor) { break }
            if try await !Self.retentionLeft(database) {
                Console.line(
                    "    the backlog ran out at +\(String(format: "%.1f", elapsed)) s: use more --conversations")
                break
            }
            tick += 1
            let next = started + .milliseconds(250 * tick)
            if next > .now { try await Task.sleep(until: next) }
        }
        guard let applied, let released else {
            throw DemoFailure("the workers finished before the pressure was over: use more --conversations")
        }
        return (samples, applied, released)
    }

    /// The samples as CSV, with the run's settings in `#` lines first.
    private func writeCSV(
        _ samples: [ThrottleSample], variant: RetentionBenchVariant, processes: Int, rowsPerRoot: Double
    ) throws {
        let options = throttled
        var lines = [
            "# lethe bench retention --throttled: \(processes) workers, batch \(variant), pressure \(options.pressure.rawValue)",
            "# limit=\(RetentionBenchThrottleOptions.limitSeconds)s check_interval=\(DurationText.format(options.interval)) "
                + "floor_roots_per_second=\(options.floor) processes=\(processes) "
                + "rows_per_root=\(String(format: "%.2f", rowsPerRoot))",
            "seconds,rows_deleted,rows_per_second,pressure,over_limit",
        ]
        var previous: ThrottleSample?
        for sample in samples {
            let rate = previous.map { Double(sample.rows - $0.rows) / max(sample.seconds - $0.seconds, 0.001) } ?? 0
            lines.append(
                String(
                    format: "%.3f,%d,%.0f,%d,%d", sample.seconds, sample.rows, rate, sample.pressure ? 1 : 0,
                    sample.overLimit ? 1 : 0))
            previous = sample
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: options.csv, atomically: true, encoding: .utf8)
    }

    /// Prints the rates before, during and after, and how fast the workers paused and resumed
    /// (from the batches' start times in the deletion log, on the database's clock).
    private func report(
        _ samples: [ThrottleSample], applied: String, released: String, database: ConnectionThread
    ) async throws {
        let options = throttled
        func rate(_ from: Double, _ to: Double) -> String {
            let inside = samples.filter { $0.seconds >= from && $0.seconds <= to }
            guard let first = inside.first, let last = inside.last, last.seconds > first.seconds else { return "-" }
            return "\(Int(Double(last.rows - first.rows) / (last.seconds - first.seconds))) rows/s"
        }
        let (start, end) = (Double(options.pressureAt), Double(options.pressureAt + options.pressureFor))
        let lag = options.pressure == .transaction ? Double(RetentionBenchThrottleOptions.limitSeconds) : 0
        let (after, last, firstAfter) = try await database.run { connection in
            try connection.query(
                """
                WITH b AS (
                    SELECT deleted_at AS began, deleted_at + duration_ms * interval '1 ms' AS ended
                    FROM lethe.deletion_records WHERE entity_type = 'conversations'
                ), t AS (SELECT $1::timestamptz + $3::float8 * interval '1 s' AS over, $2::timestamptz AS released)
                SELECT (SELECT count(*)::int8 FROM b, t WHERE b.began >= t.over AND b.began < t.released),
                       (SELECT extract(epoch FROM max(b.ended - t.over))::float8 FROM b, t WHERE b.began < t.released),
                       (SELECT extract(epoch FROM min(b.began - t.released))::float8 FROM b, t WHERE b.began >= t.released)
                FROM t
                """, [applied, released, lag])[0].decode((Int, Double?, Double?).self)
        }
        BenchReport.line(
            "    before: \(rate(0, start)); over the limit: \(rate(start + lag + 0.5, end)); after: \(rate(end, .infinity))"
        )
        BenchReport.line(
            "    the signal crossed its limit at +\(String(format: "%.1f", start + lag)) s: \(after) batches started after it; "
                + "the last batch before the pause ended \(last.map { String(format: "%.2f s", $0) } ?? "-") after it")
        BenchReport.line(
            "    pressure released at +\(String(format: "%.1f", end)) s: the first batch started "
                + "\(firstAfter.map { String(format: "%.2f s", $0) } ?? "never") later (check interval "
                + "\(DurationText.format(options.interval)))")
        BenchReport.line("    samples: \(options.csv) (plot: scripts/plot-throttled-run \(options.csv) PNG)")
    }
}
