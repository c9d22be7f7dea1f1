import Foundation
import Postgres
import TestSupport
import Testing

/// A registry sync while workers run: no deletion acts on the registry a worker read at
/// start once another is in force, and a sync waits for the batches in flight.
@Suite struct RegistryReloadTests {
    static func config(_ database: TestDatabase, versions: Bool, extra: String = "") throws -> String {
        try writeConfig(
            """
            database: { url: "\(database.url)" }
            coordinator: { tick_interval: 100ms }
            worker: { poll_interval: 100ms }
            entity_types:
              docs:
                table: app.docs
                account: account_id
                clock: saved_at
                interval: { default: 30d, min: 1d, max: 1y }
            \(versions ? "    versions: { item: item, keep: 5 }" : "")
            \(extra)
            """)
    }

    /// The application's one table, under test.
    static func createDocs(_ connection: Connection) throws {
        try connection.executeScript(
            """
            CREATE SCHEMA app;
            CREATE TABLE app.docs (id bigint PRIMARY KEY, account_id bigint, item bigint, saved_at timestamptz);
            """)
    }

    @Test func aRunningWorkerFollowsASyncBeforeItDeletes() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try Self.createDocs(connection)
            let before = try Self.config(database, versions: false)
            let after = try Self.config(database, versions: true)
            defer { for path in [before, after] { try? FileManager.default.removeItem(atPath: path) } }
            #expect(try LetheProcess.run(["policy", "sync", "--config", before]).status == 0)
            #expect(try LetheProcess.run(["account", "add", "1", "--config", before]).status == 0)
            // A worker reads the registry in force (no versions) and waits for tasks.
            let worker = try LetheProcess.start(["worker", "--config", before])
            defer { if worker.0.isRunning { kill(worker.0.processIdentifier, SIGKILL) } }
            // Then the registry in force keeps the newest 5 versions of each item.
            let synced = try LetheProcess.run(["policy", "sync", "--config", after])
            #expect(synced.status == 0, "\(synced.output)")
            try connection.execute(
                "INSERT INTO app.docs SELECT g, 1, 7, now() - g * interval '100 days' FROM generate_series(1, 10) g")
            let coordinator = try LetheProcess.run(["coordinator", "--until-idle", "--config", after])
            #expect(coordinator.status == 0, "\(coordinator.output)")
            #expect(
                eventually(timeout: .seconds(60)) {
                    (try? connection.scalar(
                        "SELECT count(*) = 0 FROM lethe.tasks WHERE state IN ('available', 'running', 'failed')",
                        as: Bool.self)) ?? false
                })
            kill(worker.0.processIdentifier, SIGTERM)
            worker.0.waitUntilExit()
            // The worker ran on the registry in force: the 5 newest versions stay.
            #expect(try connection.scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM app.docs") == "1,2,3,4,5")
        }
    }

    /// `REINDEX CONCURRENTLY` gives the index that proves a key a new OID: a running worker
    /// refuses the batch it was about to run (the proof it compiled is gone), compiles the
    /// registry again, finds the key still proven, and deletes on the next attempt.
    @Test func aRunningWorkerSurvivesAReindexOfAKeysIndex() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try Self.createDocs(connection)
            let path = try Self.config(
                database, versions: false, extra: "queue: { retry_base: 100ms, retry_max: 500ms }")
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(try LetheProcess.run(["policy", "sync", "--config", path]).status == 0)
            #expect(try LetheProcess.run(["account", "add", "1", "--config", path]).status == 0)
            let worker = try LetheProcess.start(["worker", "--config", path])
            defer { if worker.0.isRunning { kill(worker.0.processIdentifier, SIGKILL) } }
            let before: Int64 = try connection.scalar("SELECT 'app.docs_pkey'::regclass::oid::bigint")
            try connection.execute("REINDEX INDEX CONCURRENTLY app.docs_pkey")
            #expect(try connection.scalar("SELECT 'app.docs_pkey'::regclass::oid::bigint", as: Int64.self) != before)
            try connection.execute(
                "INSERT INTO app.docs SELECT g, 1, g, now() - interval '100 days' FROM generate_series(1, 10) g")
            let coordinator = try LetheProcess.run(["coordinator", "--until-idle", "--config", path])
            #expect(coordinator.status == 0, "\(coordinator.output)")
            #expect(
                eventually(timeout: .seconds(60)) {
                    (try? connection.scalar("SELECT count(*) = 0 FROM app.docs", as: Bool.self)) ?? false
                })
            kill(worker.0.processIdentifier, SIGTERM)
            worker.0.waitUntilExit()
        }
    }
}
