import Foundation
import Postgres
import TestSupport
import Testing

/// `lethe migrate` as a user runs it: the real executable against a real database.
@Suite("lethe migrate, end to end")
struct MigrateCommandTests {
    @Test func migrateCreatesSchemaAndASecondRunChangesNothing() async throws {
        try await TestDatabase.with { database in
            let first = try LetheProcess.run(["migrate", "--database-url", database.url])
            #expect(first.status == 0, "\(first.output)")
            #expect(first.stdout.contains("applied 0001_lethe_schema.sql"))
            let connection = try database.connect()
            let count = try connection.query("SELECT count(*) FROM lethe.schema_migrations")[0].decode(Int.self, at: 0)
            #expect(count >= 1)

            let second = try LetheProcess.run(["migrate"], environment: ["LETHE_DATABASE_URL": database.url])
            #expect(second.status == 0, "\(second.output)")
            #expect(second.stdout.contains("nothing to apply"))
            let again = try connection.query("SELECT count(*) FROM lethe.schema_migrations")[0].decode(Int.self, at: 0)
            #expect(again == count)
        }
    }

    @Test func libpqEnvironmentVariablesWorkAsForPsql() async throws {
        try await TestDatabase.with { database in
            let env = ProcessInfo.processInfo.environment
            let result = try LetheProcess.run(
                ["migrate", "--status"],
                environment: [
                    "PGHOST": "127.0.0.1", "PGPORT": env["LETHE_TEST_PG_PORT"] ?? "5432", "PGUSER": "postgres",
                    "PGDATABASE": database.name,
                ])
            #expect(result.status == 0, "\(result.output)")
            let first = result.stdout.split(separator: "\n").first { $0.hasPrefix("0001 ") }
            #expect(first?.split(separator: " ").prefix(3) == ["0001", "lethe_schema", "pending"], "\(result.stdout)")
        }
    }

    @Test func statusAndDryRunChangeNothing() async throws {
        try await TestDatabase.with { database in
            let dryRun = try LetheProcess.run(["migrate", "--dry-run", "--database-url", database.url])
            #expect(dryRun.status == 0, "\(dryRun.output)")
            #expect(dryRun.stdout.contains("CREATE SCHEMA IF NOT EXISTS lethe;"))
            #expect(dryRun.stdout.contains("nothing was applied"))
            let connection = try database.connect()
            let exists = try connection.query("SELECT to_regnamespace('lethe') IS NOT NULL")[0].decode(Bool.self, at: 0)
            #expect(!exists)

            _ = try LetheProcess.run(["migrate", "--database-url", database.url])
            let status = try LetheProcess.run(["migrate", "--status", "--database-url", database.url])
            #expect(status.status == 0)
            #expect(status.stdout.contains("applied"))
            #expect(status.stdout.contains("0 pending"))
        }
    }

    @Test func fourConcurrentProcessesApplyEachFileOnce() async throws {
        try await TestDatabase.with { database in
            let directory = try Repository.copyOfMigrations()
            try Data(
                "CREATE TABLE public.once (n int);\nSELECT pg_sleep(0.2);\nINSERT INTO public.once VALUES (1);\n".utf8
            )
            .write(to: directory.appendingPathComponent("9001_once.sql"))
            let processes = try (0..<4).map { _ in
                try LetheProcess.start(["migrate", "--database-url", database.url, "--migrations", directory.path])
            }
            for (process, _, _) in processes { process.waitUntilExit() }
            #expect(processes.allSatisfy { $0.0.terminationStatus == 0 })
            let connection = try database.connect()
            #expect(try connection.query("SELECT count(*) FROM public.once")[0].decode(Int.self, at: 0) == 1)
            let versions = try connection.query(
                "SELECT count(*), count(DISTINCT version) FROM lethe.schema_migrations")[0]
            let (rows, distinct) = try versions.decode((Int, Int).self)
            #expect(rows == distinct)
        }
    }

    @Test func editedFileExitsTwoNamingTheFile() async throws {
        try await TestDatabase.with { database in
            let directory = try Repository.copyOfMigrations()
            let first = try LetheProcess.run([
                "migrate", "--database-url", database.url, "--migrations", directory.path,
            ])
            #expect(first.status == 0, "\(first.output)")
            let file = directory.appendingPathComponent("0001_lethe_schema.sql")
            try (String(contentsOf: file, encoding: .utf8) + "\n-- an edit\n").write(
                to: file, atomically: true, encoding: .utf8)
            let second = try LetheProcess.run([
                "migrate", "--database-url", database.url, "--migrations", directory.path,
            ])
            #expect(second.status == 2)
            #expect(second.stderr.contains("0001_lethe_schema.sql was edited after it was applied"))
        }
    }

    @Test(
        "malformed connection URLs exit 2 naming the value, never the password",
        arguments: [
            ("postgresql://lethe:s3cret-pw@db.example:notaport/app", "notaport"),
            ("postgresql://lethe:s3cret-pw@db.example/app?sslmod=require", "sslmod"),
        ])
    func malformedURL(_ url: String, _ named: String) throws {
        let result = try LetheProcess.run(["migrate", "--database-url", url])
        #expect(result.status == 2, "\(result.output)")
        #expect(result.stderr.contains(named))
        #expect(result.stderr.contains("postgresql://user@host:port/dbname"))
        #expect(!result.output.contains("s3cret-pw"))
    }

    @Test func unreachableServerExitsOne() throws {
        let result = try LetheProcess.run(["migrate", "--database-url", "postgresql://lethe:pw-x@127.0.0.1:1/app"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("cannot connect to PostgreSQL"))
        #expect(!result.output.contains("pw-x"))
    }

    @Test func badConfigurationExitsTwo() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-\(UUID().uuidString).yml")
        try "database:\n  url: postgresql://x@y/z\nlogging:\n  level: info\n".write(
            to: file, atomically: true, encoding: .utf8)
        let unknownKey = try LetheProcess.run(["migrate", "--config", file.path])
        #expect(unknownKey.status == 2)
        #expect(unknownKey.stderr.contains("unknown key logging"))

        let missing = try LetheProcess.run(["migrate"], environment: ["LETHE_CONFIG": "/nonexistent/lethe.yml"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("/nonexistent/lethe.yml"))

        let level = try LetheProcess.run(["migrate", "--log-level", "loud", "--database-url", "postgresql://x@y/z"])
        #expect(level.status == 2)
        #expect(level.stderr.contains("\"loud\""))
        #expect(level.stderr.contains("trace, debug, info"))
    }

    @Test func unknownFlagExitsTwo() throws {
        let result = try LetheProcess.run(["migrate", "--frobnicate"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("--frobnicate"))
    }

    @Test func helpDescribesTheCommands() throws {
        let result = try LetheProcess.run(["--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("migrate"))
        #expect(result.stdout.contains("Exit status"))
    }
}

@Suite("queue commands, end to end")
struct QueueCommandTests {
    @Test func heartbeatNotUnderHalfTheLeaseExitsTwo() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-\(UUID().uuidString).yml")
        try "worker:\n  lease: 10s\n  heartbeat_interval: 6s\n".write(to: file, atomically: true, encoding: .utf8)
        let result = try LetheProcess.run(
            ["worker", "--config", file.path, "--database-url", "postgresql://x@127.0.0.1:1/y"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("worker.heartbeat_interval (6s)"))
        #expect(result.stderr.contains("worker.lease (10s)"))
    }

    @Test func badFlagsExitTwo() throws {
        let concurrency = try LetheProcess.run(["worker", "--concurrency", "0"])
        #expect(concurrency.status == 2)
        #expect(concurrency.stderr.contains("--concurrency 0"))
        let state = try LetheProcess.run(["task", "list", "--state", "stuck"])
        #expect(state.status == 2)
        #expect(state.stderr.contains("--state stuck is not a task state; accepted: available, running"))
        let kind = try LetheProcess.run(["task", "enqueue", "nothing"])
        #expect(kind.status == 2)
        #expect(kind.stderr.contains("unknown task kind nothing; accepted: noop"))
        let payload = try LetheProcess.run(["task", "enqueue", "noop", "--payload", "[1]"])
        #expect(payload.status == 2)
        #expect(payload.stderr.contains("is not a JSON object"))
    }

    @Test func enqueueListCancelAndStatus() async throws {
        try await TestDatabase.with { database in
            let env = ["LETHE_DATABASE_URL": database.url]
            #expect(try LetheProcess.run(["migrate"], environment: env).status == 0)
            let enqueue = try LetheProcess.run(["task", "enqueue", "noop", "--count", "3"], environment: env)
            #expect(enqueue.stdout.contains("enqueued 3 of 3"))
            let again = try LetheProcess.run(["task", "enqueue", "noop", "--count", "3"], environment: env)
            #expect(again.stdout.contains("enqueued 0 of 3 (3 already had an unfinished task)"))
            let list = try LetheProcess.run(["task", "list", "--state", "available"], environment: env)
            #expect(list.status == 0)
            #expect(list.stdout.contains("task-3") && list.stdout.contains("available"))
            let firstID = try #require(
                list.stdout.split(separator: "\n").dropFirst().first?.split(separator: " ").first)
            let cancel = try LetheProcess.run(["task", "cancel", String(firstID), "424242"], environment: env)
            #expect(cancel.stdout.contains("cancelled 1 task: \(firstID)"))
            #expect(cancel.stdout.contains("left alone (already finished or unknown): 424242"))
            let status = try LetheProcess.run(["status"], environment: env)
            #expect(status.status == 0)
            #expect(status.stdout.contains("noop  available  2"))
            #expect(status.stdout.contains("noop  cancelled  1      0    -"))
            #expect(status.stdout.contains("Processes: none registered"))
            let json = try LetheProcess.run(["status", "--json"], environment: env)
            let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
            #expect((object?["queue"] as? [Any])?.count == 2)
            let files = try FileManager.default.contentsOfDirectory(
                atPath: Repository.root().appendingPathComponent("migrations").path)
            // The highest version applied (numbers may have gaps while branches add migrations).
            let newest = files.filter { $0.hasSuffix(".sql") }.compactMap { Int($0.prefix(4)) }.max()
            #expect(object?["schema_version"] as? Int == newest)
        }
    }
}
