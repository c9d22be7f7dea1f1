import Foundation
import LetheCLI
import LetheConfiguration
import Postgres
import Retention
import Store

/// One `lethe bench queue` session against its scratch database.
struct QueueBenchRun {
    enum System: String { case lethe = "Lethe", baseline = "plain SQL" }

    struct Result {
        var system: System
        var processes: Int
        var enqueuePerSecond: Double
        var completedPerSecond: Double
        var walBytesPerTask: Double
        /// CPU split, lock waits and WAL of the run (Lethe's and the baseline's alike).
        var cost: BenchCost?

        var progressLine: String {
            "\(system.rawValue), \(processes) process\(processes == 1 ? "" : "es"): "
                + "enqueue \(Self.rate(enqueuePerSecond))/s, claim+complete \(Self.rate(completedPerSecond))/s, "
                + "\(Int(walBytesPerTask)) WAL bytes/task"
        }

        static func rate(_ value: Double) -> String {
            let formatter = NumberFormatter()
            formatter.numberStyle = .decimal
            formatter.maximumFractionDigits = 0
            return formatter.string(from: NSNumber(value: value.rounded())) ?? "\(Int(value))"
        }
    }

    let conninfo: String
    let tasks: Int
    let claimBatch: Int
    let claimLoops: Int
    let concurrency: Int
    let executable: String
    let database: ConnectionThread

    init(conninfo: String, tasks: Int, claimBatch: Int, claimLoops: Int, concurrency: Int, executable: String) {
        self.conninfo = conninfo
        self.tasks = tasks
        self.claimBatch = claimBatch
        self.claimLoops = claimLoops
        self.concurrency = concurrency
        self.executable = executable
        self.database = ConnectionThread(conninfo: conninfo, name: "lethe-bench")
    }

    func measure(_ system: System, processes count: Int) async throws -> Result {
        let (tasks, queue) = (self.tasks, TaskQueue())
        // A clean queue, the tasks enqueued by one producer in chunks of 1,000, fresh statistics.
        let enqueueSeconds = try await database.run { connection in
            try connection.execute("TRUNCATE lethe.tasks, lethe.noop_runs, lethe.workers, lethe.leader")
            // Workers read the entity-type registry from the database: an empty one will do.
            _ = try RegistryInForce.syncBenchmark(Configuration(), on: connection)
            let clock = ContinuousClock()
            let start = clock.now
            for chunk in stride(from: 0, to: tasks, by: 1000) {
                let batch = (chunk..<min(chunk + 1000, tasks)).map { NewTask(kind: .noop, accountID: "bench-\($0)") }
                try queue.enqueue(batch, on: connection)
            }
            let elapsed = start.duration(to: clock.now)
            try connection.execute("ANALYZE lethe.tasks")
            try connection.execute("CHECKPOINT")
            return elapsed.seconds
        }
        let walBefore = try await database.run {
            try $0.query("SELECT pg_current_wal_lsn()::text")[0].decode(String.self, at: 0)
        }
        var meter = try await BenchCostMeter.start(database)
        let config = FileManager.default.temporaryDirectory.appendingPathComponent(
            "lethe-bench-\(UUID().uuidString).yml")
        try "worker:\n  claim_batch: \(claimBatch)\n  claim_loops: \(claimLoops)\n".write(
            to: config, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: config) }
        let arguments: [String] =
            switch system {
            case .lethe:
                [
                    "worker", "--until-idle", "--concurrency", "\(concurrency)", "--config", config.path,
                    "--log-level", "warning",
                ]
            case .baseline:
                [
                    "bench", "baseline-worker", "--batch", "\(claimBatch)", "--log-level", "warning",
                ]
            }
        let children = try (0..<count).map { _ in try start(arguments) }
        // Poll rather than block in waitUntilExit: the meter samples wait events meanwhile.
        while children.contains(where: \.isRunning) {
            try await meter.sample(database)
            try await Task.sleep(for: .milliseconds(20))
        }
        let cost = try await meter.finish(database)
        for child in children {
            child.waitUntilExit()
            if child.terminationStatus != 0 {
                throw UsageError("a benchmark process exited with status \(child.terminationStatus)")
            }
        }
        let (done, span, wal) = try await database.run { connection in
            try connection.query(
                """
                SELECT count(*) FILTER (WHERE state = 'succeeded'),
                       extract(epoch FROM max(finished_at) - min(started_at))::float8,
                       pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8
                FROM lethe.tasks
                """, [walBefore])[0].decode((Int, Double, Double).self)
        }
        guard done == tasks else {
            throw UsageError("\(system.rawValue) finished \(done) of \(tasks) tasks; the measurement is void")
        }
        return Result(
            system: system, processes: count, enqueuePerSecond: Double(tasks) / enqueueSeconds,
            completedPerSecond: Double(tasks) / max(span, 0.000_001), walBytesPerTask: wal / Double(tasks),
            cost: cost)
    }

    private func start(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        // The connection string goes through the environment, never the command line (`ps`).
        process.environment = ChildEnvironment.with(databaseURL: conninfo)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Lethe beside the baseline, per process count (the mean of runs).
    static func table(_ results: [Result]) -> TextTable {
        var table = TextTable(
            "PROCESSES", "ENQUEUE/S", "LETHE CLAIM+COMPLETE/S", "PLAIN SQL/S", "RATIO", "WAL B/TASK LETHE", "PLAIN SQL")
        let counts = results.map(\.processes).reduce(into: [Int]()) { if !$0.contains($1) { $0.append($1) } }
        for count in counts {
            let lethe = results.filter { $0.processes == count && $0.system == .lethe }
            let baseline = results.filter { $0.processes == count && $0.system == .baseline }
            func mean(_ rows: [Result], _ value: (Result) -> Double) -> Double {
                rows.map(value).reduce(0, +) / Double(max(rows.count, 1))
            }
            let letheRate = mean(lethe, \.completedPerSecond)
            let baselineRate = mean(baseline, \.completedPerSecond)
            table.add(
                "\(count)", Result.rate(mean(lethe + baseline, \.enqueuePerSecond)), Result.rate(letheRate),
                Result.rate(baselineRate), String(format: "%.2f×", letheRate / max(baselineRate, 1)),
                "\(Int(mean(lethe, \.walBytesPerTask)))", "\(Int(mean(baseline, \.walBytesPerTask)))")
        }
        return table
    }

    /// Where each run's time went: the CPU split between PostgreSQL and the worker
    /// processes, and the backends' waits (means over the run's samples).
    static func costTable(_ results: [Result]) -> TextTable {
        var table = TextTable(headers: ["PROCESSES", "SYSTEM", "CLAIM+COMPLETE/S"] + BenchCost.columns)
        for result in results {
            table.add(
                row: ["\(result.processes)", result.system.rawValue, Result.rate(result.completedPerSecond)]
                    + (result.cost?.tableCells ?? BenchCost.columns.map { _ in "-" }))
        }
        return table
    }
}
