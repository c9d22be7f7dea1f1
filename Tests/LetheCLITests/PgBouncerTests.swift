import Foundation
import Postgres
import TestSupport
import Testing

/// Workers through PgBouncer in transaction-pooling mode (scripts/services.sh starts one), the
/// coordinator on a direct connection, on the example application's retention tasks.
@Suite struct PgBouncerTests {

    @Test func workersThroughPgBouncerCompleteRetentionTasks() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try ExampleApplication.load(on: connection, tenants: 2, scale: 300)
            let direct = try ExampleApplication.configuration(url: database.url)
            let bounced = try ExampleApplication.configuration(url: try database.pgBouncerURL())
            defer {
                try? FileManager.default.removeItem(atPath: direct)
                try? FileManager.default.removeItem(atPath: bounced)
            }
            #expect(try LetheProcess.run(["policy", "sync", "--config", direct]).status == 0)
            #expect(try LetheProcess.run(["account", "add", "1", "2", "--config", direct]).status == 0)
            try connection.execute(
                """
                SELECT lethe.set_policy(a::text, t.name, t.min_interval)
                FROM generate_series(1, 2) a, lethe.entity_types t WHERE t.deletes
                """)
            try connection.execute("UPDATE lethe.retention_runs SET next_run_at = now()")
            // Noop tasks too, enqueued through PgBouncer: each records the run (a transaction of its own).
            let enqueue = try LetheProcess.run([
                "task", "enqueue", "noop", "--count", "40", "--payload", #"{"record": true, "sleep_ms": 20}"#,
                "--config", bounced,
            ])
            #expect(enqueue.status == 0, "\(enqueue.output)")

            let logs = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-pgb-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: logs) }
            let pollOnlyLog = logs.appendingPathComponent("poll-only.log")
            let listeningLog = logs.appendingPathComponent("listening.log")
            let processes = [
                try LetheProcess.launch(
                    ["coordinator", "--config", direct], log: logs.appendingPathComponent("c.log")),
                try LetheProcess.launch(["worker", "--poll-only", "--config", bounced], log: pollOnlyLog),
                try LetheProcess.launch(["worker", "--config", bounced], log: listeningLog),
            ]
            defer {
                for process in processes where process.isRunning { process.terminate() }
                for process in processes { process.waitUntilExit() }
            }
            func count(_ sql: String) throws -> Int { try connection.scalar(sql) }
            // Both workers registered through PgBouncer, and retention ran to completion.
            let done = try eventually(timeout: .seconds(120)) {
                try count("SELECT count(*) FROM lethe.worker_status WHERE role = 'worker'") == 2
                    && count("SELECT count(*) FROM lethe.deletion_log") > 0
                    && count("SELECT count(DISTINCT task_id) FROM lethe.noop_runs") == 40
                    && count("SELECT count(*) FROM lethe.retention_runs WHERE next_run_at <= now()") == 0
                    && count("SELECT count(*) FROM lethe.tasks WHERE state IN ('available', 'running', 'failed')") == 0
            }
            let output = try [pollOnlyLog, listeningLog, logs.appendingPathComponent("c.log")].map {
                try String(contentsOf: $0, encoding: .utf8)
            }
            #expect(done, "\(output)")
            #expect(try count("SELECT count(*) FROM lethe.tasks WHERE state = 'succeeded'") > 0)
            #expect(try count("SELECT count(*) FROM lethe.tasks WHERE state = 'dead'") == 0)
            // The listening worker notices the pooler, says so, and polls instead.
            #expect(output[1].contains("goes through a connection pooler"), "\(output[1])")
            #expect(!output[0].contains("connection pooler"), "\(output[0])")
            #expect(!output[0].contains("unsupported startup parameter"), "\(output[0])")
            for process in processes { process.terminate() }
            for process in processes { process.waitUntilExit() }
            #expect(processes.allSatisfy { $0.terminationStatus == 0 }, "\(output)")
        }
    }

    /// The coordinator's leader lock is a session lock: through PgBouncer it stops at once with
    /// an error that says why, instead of leading on a shared session.
    @Test func coordinatorThroughPgBouncerFailsClearly() async throws {
        try await withMigratedDatabase { database in
            let bounced = try writeConfig("database: { url: \"\(try database.pgBouncerURL())\" }\n")
            defer { try? FileManager.default.removeItem(atPath: bounced) }
            for command in ["coordinator", "run"] {
                let result = try LetheProcess.run([command, "--config", bounced])
                #expect(result.status == 1, "\(result.output)")
                #expect(result.output.contains("goes through a connection pooler"), "\(result.output)")
                #expect(result.output.contains("needs a direct connection"), "\(result.output)")
                #expect(!result.output.contains("unsupported startup parameter"), "\(result.output)")
            }
        }
    }

    /// `migrate` serialises on a session advisory lock (`pg_advisory_lock`, held across one
    /// transaction per file): through transaction pooling the lock stays on whichever server
    /// connection ran it, so concurrent migrations do not exclude each other, the unlock runs
    /// elsewhere, and a lock left on a pooled server connection hangs every later migrate.
    /// Applying (and `--baseline`) through a pooler is refused, naming why, before anything
    /// is written; read-only `--status` and `--dry-run` still work through it.
    @Test func migrateThroughPgBouncerIsRefusedBeforeWritingAnything() async throws {
        try await TestDatabase.with { database in
            let bounced = try writeConfig("database: { url: \"\(try database.pgBouncerURL())\" }\n")
            let direct = try writeConfig("database: { url: \"\(database.url)\" }\n")
            defer {
                try? FileManager.default.removeItem(atPath: bounced)
                try? FileManager.default.removeItem(atPath: direct)
            }
            let connection = try database.connect()
            defer { connection.close() }
            for arguments in [["migrate"], ["migrate", "--baseline", "1"]] {
                let result = try LetheProcess.run(arguments + ["--config", bounced])
                #expect(result.status == 2, "\(arguments): \(result.output)")
                #expect(result.output.contains("goes through a connection pooler"), "\(result.output)")
                #expect(result.output.contains("direct connection"), "\(result.output)")
                let schemas: Int = try connection.scalar(
                    "SELECT count(*)::int FROM pg_namespace WHERE nspname = 'lethe'")
                #expect(schemas == 0, "\(arguments) wrote schema lethe through the pooler")
            }
            #expect(try LetheProcess.run(["migrate", "--config", direct]).status == 0)
            for mode in ["--status", "--dry-run"] {
                let result = try LetheProcess.run(["migrate", mode, "--config", bounced])
                #expect(result.status == 0, "\(mode): \(result.output)")
            }
        }
    }
}
