import ArgumentParser
import Foundation
import LetheCLI
import LetheConfiguration
import Postgres
import Store

/// `lethe bench …`: throughput measured against a baseline in the same run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks, each beside a baseline (plain SQL, bsdtar, sftp) run in the same process.",
        subcommands: [
            QueueBench.self, RetentionBench.self, ArchiveBench.self, FairnessBench.self, SoakBench.self,
            ChaosBench.self, BaselineWorker.self,
        ])
}

/// `lethe bench queue`
struct QueueBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue",
        abstract: "No-op tasks: enqueue rate and claim+complete rate with 1, 2, 4 (and 8) worker processes.",
        discussion: """
            Creates a scratch database (lethe_bench_…) on the configured server, applies the \
            migrations there and, for each process count, enqueues --tasks no-op tasks and \
            lets that many `lethe worker --until-idle` processes run them; then the same tasks \
            are run by as many plain-SQL loops (claim with SKIP LOCKED, complete with \
            id = ANY) on the same table. Rates come from the tasks' own timestamps (first \
            claim to last completion), so process start-up is excluded. A second table shows \
            where each run's time went: CPU seconds of PostgreSQL's processes and of the \
            workers (from /proc; PostgreSQL's only when the server runs on this machine), the \
            mean number of backends waiting on locks, LWLocks and I/O. Use a release build.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(help: "No-op tasks per measurement.") var tasks = 50_000
    @Option(help: ArgumentHelp("Worker process counts to measure, comma-separated.", valueName: "list"))
    var processes = "1,2,4"
    @Option(name: .customLong("claim-batch"), help: "Tasks per claim, for Lethe and the baseline alike.")
    var claimBatch = 100
    @Option(help: "Slots per Lethe worker process.") var concurrency = 200
    @Option(name: .customLong("claim-loops"), help: "Claim loops per Lethe worker process (worker.claim_loops).")
    var claimLoops = 1
    @Option(help: "Measurements per process count (the table shows each).") var runs = 1
    @Flag(name: .customLong("keep-database"), help: "Do not drop the scratch database afterwards.")
    var keepDatabase = false

    var processCounts: [Int] {
        processes.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    }

    func validate() throws {
        let counts = processCounts
        guard !counts.isEmpty, counts.count == processes.split(separator: ",").count,
            counts.allSatisfy({ (1...64).contains($0) })
        else { throw ValidationError("--processes \(processes) is not a list of counts from 1 to 64, e.g. 1,2,4") }
        guard tasks >= 1000 else { throw ValidationError("--tasks \(tasks) is too few to time; use at least 1000") }
        guard (1...10_000).contains(claimBatch) else {
            throw ValidationError("--claim-batch \(claimBatch) must be 1 to 10000")
        }
        guard concurrency >= 1, runs >= 1, claimLoops >= 1 else {
            throw ValidationError("--concurrency, --claim-loops and --runs must be at least 1")
        }
    }

    func run() async throws {
        let context = try CommandContext(global, label: "lethe.bench")
        let scratch = "lethe_bench_\(UInt32.random(in: 0...UInt32.max))"
        let conninfo = ConnectionString.withDatabase(context.conninfo, scratch)
        try await context.withDatabase(name: "lethe-bench") {
            try $0.execute("CREATE DATABASE \(SQLIdentifier.quote(scratch))")
        }
        do {
            let migrations = try MigrationSet.resolve(flag: nil, configured: context.configuration.migrationsDirectory)
            let migrator = Migrator(files: migrations.files)
            let bench = QueueBenchRun(
                conninfo: conninfo, tasks: tasks, claimBatch: claimBatch, claimLoops: claimLoops,
                concurrency: concurrency,
                executable: try Self.executablePath())
            let settings = try await bench.database.run { connection in
                try migrator.apply(connection)
                return try connection.query(
                    "SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit')"
                )[0].decode((String, String, String).self)
            }
            print(
                "lethe bench queue: \(tasks) no-op tasks per measurement, claim batch \(claimBatch), "
                    + "\(concurrency) slots and \(claimLoops) claim loops per Lethe worker")
            BenchReport.line(
                "PostgreSQL \(settings.0), fsync=\(settings.1), synchronous_commit=\(settings.2); database \(scratch)\n"
            )
            var results: [QueueBenchRun.Result] = []
            for count in processCounts {
                for _ in 0..<runs {
                    for system in [QueueBenchRun.System.lethe, .baseline] {
                        let result = try await bench.measure(system, processes: count)
                        print("  \(result.progressLine)")
                        results.append(result)
                    }
                }
            }
            BenchReport.table(QueueBenchRun.table(results))
            BenchReport.line("\nWhere the time went (CPU seconds over the run; backends waiting, mean of samples):")
            BenchReport.table(QueueBenchRun.costTable(results))
            await bench.database.shutdown()
        } catch {
            if !keepDatabase { try? await dropDatabase(context, scratch) }
            throw error
        }
        if !keepDatabase { try await dropDatabase(context, scratch) }
    }

    private func dropDatabase(_ context: CommandContext, _ name: String) async throws {
        try await context.withDatabase(name: "lethe-bench") {
            try $0.execute("DROP DATABASE IF EXISTS \(SQLIdentifier.quote(name)) WITH (FORCE)")
        }
    }

    static func executablePath() throws -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}

/// `lethe bench baseline-worker`: the plain-SQL loop the queue benchmark compares with.
struct BaselineWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baseline-worker",
        abstract: "Plain-SQL claim/complete loop over lethe.tasks (used by `lethe bench queue`).",
        shouldDisplay: false)

    @OptionGroup var global: GlobalOptions
    @Option var batch = 100

    func run() async throws {
        let context = try CommandContext(global, label: "lethe.bench")
        let batch = self.batch
        let worker = UUID()
        try await context.withDatabase(name: "lethe-baseline") { connection in
            while true {
                let ids = try connection.query(
                    """
                    WITH c AS MATERIALIZED (
                        SELECT id FROM lethe.tasks
                        WHERE state = 'available' AND run_at <= now()
                        ORDER BY priority, run_at, id
                        LIMIT $1
                        FOR UPDATE SKIP LOCKED
                    )
                    UPDATE lethe.tasks t
                    SET state = 'running', attempts = t.attempts + 1, worker_id = $2,
                        lease_expires_at = now() + interval '30 seconds', started_at = now()
                    WHERE t.id = ANY (ARRAY(SELECT id FROM c))
                    RETURNING t.id
                    """, [batch, worker]
                ).map { try $0.decode(Int64.self, at: 0) }
                if ids.isEmpty { return }
                try connection.execute(
                    """
                    UPDATE lethe.tasks
                    SET state = 'succeeded', finished_at = now(), worker_id = NULL, lease_expires_at = NULL
                    WHERE id = ANY($1)
                    """, [ids])
            }
        }
    }
}
