import Foundation
import Postgres
import TestSupport
import Testing

/// Only the coordinator, `lethe run` and `lethe policy sync` write the entity-type
/// registry; every other command reads it from the database.
@Suite struct RegistryInForceTests {
    static let good = RegistryConfigurationTests.good

    func config(_ database: TestDatabase, _ registry: String = Self.good) throws -> String {
        try writeConfig(
            """
            database: { url: "\(database.url)" }
            coordinator: { tick_interval: 200ms }
            worker: { poll_interval: 200ms, concurrency: 2 }
            \(registry)
            """)
    }

    /// The registry rows as text, to compare before and after.
    func snapshot(_ connection: Connection) throws -> [String] {
        try connection.query(
            """
            SELECT concat_ws(' ', name, active, table_name, clock_column, predicate, min_interval, max_interval,
                             synced_at)
            FROM lethe.entity_types ORDER BY name
            """
        ).map { try $0.decode(String.self, at: 0) }
            + connection.query("SELECT concat_ws(' ', name, active, synced_at) FROM lethe.blob_stores ORDER BY name")
            .map { try $0.decode(String.self, at: 0) }
    }

    func activeTypes(_ connection: Connection) throws -> [String] {
        try connection.query("SELECT name FROM lethe.entity_types WHERE active ORDER BY name").map {
            try $0.decode(String.self, at: 0)
        }
    }

    /// A coordinator run that syncs the registry (both before and after the fix).
    func coordinate(_ path: String) throws -> ProcessResult {
        try LetheProcess.run(["coordinator", "--until-idle", "--config", path])
    }

    @Test func previewWithoutAConfigurationChangesNothing() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(TestSchema.sql)
            let path = try config(database)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let synced = try coordinate(path)
            #expect(synced.status == 0, "\(synced.output)")
            #expect(try activeTypes(connection) == ["conversations"])
            try connection.execute("SELECT lethe.add_account('2')")
            let before = try snapshot(connection)

            let preview = try LetheProcess.run(["policy", "preview", "--account", "2", "--database-url", database.url])
            #expect(preview.status == 0, "\(preview.output)")
            #expect(preview.stdout.contains("conversations"))
            for command in [["policy", "show", "--account", "2"], ["account", "list"], ["policy", "types"]] {
                let result = try LetheProcess.run(command + ["--database-url", database.url])
                #expect(result.status == 0, "\(command): \(result.output)")
            }
            #expect(try snapshot(connection) == before)
            #expect(try activeTypes(connection) == ["conversations"])
        }
    }

    @Test func commandsWithoutARegistryInForceSaySo() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(TestSchema.sql)
            let path = try config(database)
            defer { try? FileManager.default.removeItem(atPath: path) }
            for command in [
                ["policy", "preview", "--account", "1"], ["account", "add", "1"], ["worker", "--until-idle"],
            ] {
                let result = try LetheProcess.run(command + ["--config", path])
                #expect(result.status == 2, "\(command): \(result.output)")
                #expect(result.stderr.contains("no entity-type registry in the database yet; run `lethe policy sync`"))
            }
            #expect(try connection.scalar("SELECT count(*) FROM lethe.entity_types", as: Int.self) == 0)
            // policy types checks the file, says nothing is in force, and writes nothing.
            let types = try LetheProcess.run(["policy", "types", "--config", path])
            #expect(types.status == 2)
            #expect(types.stdout.contains("is valid against the database: 1 entity types"))
            #expect(try connection.scalar("SELECT count(*) FROM lethe.entity_types", as: Int.self) == 0)
            // The first sync into an empty registry needs no confirming.
            let sync = try LetheProcess.run(["policy", "sync", "--config", path])
            #expect(sync.status == 0, "\(sync.output)")
            #expect(sync.stdout.contains("into an empty registry"))
            #expect(try activeTypes(connection) == ["conversations"])
            #expect(try LetheProcess.run(["account", "add", "1", "--config", path]).status == 0)
        }
    }

    @Test func syncRemovingATypeNeedsConfirm() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(TestSchema.sql)
            let path = try config(database)
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(try LetheProcess.run(["policy", "sync", "--config", path]).status == 0)
            let empty = try config(database, "")
            defer { try? FileManager.default.removeItem(atPath: empty) }
            let before = try snapshot(connection)

            let refused = try LetheProcess.run(["policy", "sync", "--config", empty])
            #expect(refused.status == 2, "\(refused.output)")
            #expect(refused.stderr.contains("needs --confirm: entity type conversations is no longer configured"))
            #expect(refused.stderr.contains("needs --confirm: blob store blobs is no longer configured"))
            #expect(refused.stderr.contains("needs --confirm: blob reference app.conv.rec (store blobs) is removed"))
            #expect(refused.stderr.contains("nothing was changed"))
            #expect(try snapshot(connection) == before)

            // policy types shows the same differences, read-only.
            let types = try LetheProcess.run(["policy", "types", "--config", empty])
            #expect(types.status == 0, "\(types.output)")
            #expect(types.stdout.contains("conversations  app.conv"))
            #expect(types.stdout.contains("needs --confirm: entity type conversations is no longer configured"))
            #expect(try snapshot(connection) == before)

            let confirmed = try LetheProcess.run(["policy", "sync", "--confirm", "--config", empty])
            #expect(confirmed.status == 0, "\(confirmed.output)")
            #expect(confirmed.stdout.contains("confirmed: entity type conversations is no longer configured"))
            #expect(try activeTypes(connection).isEmpty)
            let row = try #require(try connection.query("SELECT changes, confirmed FROM lethe.registry_in_force").first)
            let (changes, confirmedFlag) = try row.decode(([String], Bool).self)
            #expect(confirmedFlag, "\(changes)")
            #expect(changes.contains { $0.contains("entity type conversations is no longer configured") }, "\(changes)")
        }
    }

    /// A database synced before the registry was kept as text: the first sync compares with
    /// the active rows of lethe.entity_types.
    @Test func firstSyncAfterUpgradeComparesWithTheSyncedTypes() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(TestSchema.sql)
            let path = try config(database)
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(try LetheProcess.run(["policy", "sync", "--config", path]).status == 0)
            try connection.execute("DELETE FROM lethe.registry_source")
            let wider = try config(
                database,
                Self.good.replacingOccurrences(of: "max: 1y", with: "max: 2y").replacingOccurrences(
                    of: "min: 1d", with: "min: 1h"))
            defer { try? FileManager.default.removeItem(atPath: wider) }
            let refused = try LetheProcess.run(["policy", "sync", "--config", wider])
            #expect(refused.status == 2, "\(refused.output)")
            #expect(refused.stderr.contains("min changes from 1d to 1h"), "\(refused.output)")
            #expect(refused.stderr.contains("max changes from 1y to 2y"), "\(refused.output)")
            #expect(try connection.scalar("SELECT count(*) FROM lethe.registry_source", as: Int.self) == 0)
            // The predicate and a blob column too, and a lowered max: every change is compared.
            let changed = try config(
                database,
                Self.good.replacingOccurrences(of: "status = 'closed'", with: "true").replacingOccurrences(
                    of: "blobs: [ { column: rec } ]", with: "blobs: []"
                ).replacingOccurrences(of: "max: 1y", with: "max: 6mo"))
            defer { try? FileManager.default.removeItem(atPath: changed) }
            let refusedToo = try LetheProcess.run(["policy", "sync", "--config", changed])
            #expect(refusedToo.status == 2, "\(refusedToo.output)")
            for change in [
                "predicate (where) changes", "blob reference blobs app.conv.rec removed", "max changes from 1y to 6mo",
            ] {
                #expect(refusedToo.stderr.contains(change), "\(change): \(refusedToo.output)")
            }
            #expect(try LetheProcess.run(["policy", "sync", "--config", path]).status == 0)
        }
    }

    @Test func raisingMaxNeedsConfirmAndSafeChangesDoNot() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(TestSchema.sql)
            let path = try config(database)
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(try LetheProcess.run(["policy", "sync", "--config", path]).status == 0)
            let wider = try config(database, Self.good.replacingOccurrences(of: "max: 1y", with: "max: 2y"))
            defer { try? FileManager.default.removeItem(atPath: wider) }

            let refused = try LetheProcess.run(["policy", "sync", "--config", wider])
            #expect(refused.status == 2, "\(refused.output)")
            #expect(refused.stderr.contains("needs --confirm: entity type conversations: max changes from 1y to 2y"))
            #expect(
                try connection.scalar("SELECT max_interval::text FROM lethe.entity_types", as: String.self) == "1 year")
            let applied = try LetheProcess.run(["policy", "sync", "--confirm", "--config", wider])
            #expect(applied.status == 0, "\(applied.output)")
            #expect(
                try connection.scalar("SELECT max_interval::text FROM lethe.entity_types", as: String.self) == "2 years"
            )

            // A batch size needs no confirming; lowering max does (accounts above it are clamped).
            let batch = try config(
                database,
                Self.good.replacingOccurrences(of: "max: 1y", with: "max: 2y").replacingOccurrences(
                    of: "batch_size: 5", with: "batch_size: 7"))
            defer { try? FileManager.default.removeItem(atPath: batch) }
            let safe = try LetheProcess.run(["policy", "sync", "--config", batch])
            #expect(safe.status == 0, "\(safe.output)")
            #expect(try connection.scalar("SELECT batch_size FROM lethe.entity_types", as: Int.self) == 7)
            let narrower = try config(database, Self.good.replacingOccurrences(of: "max: 1y", with: "max: 6mo"))
            defer { try? FileManager.default.removeItem(atPath: narrower) }
            let lowered = try LetheProcess.run(["policy", "sync", "--config", narrower])
            #expect(lowered.status == 2, "\(lowered.output)")
            #expect(lowered.stderr.contains("max changes from 2y to 6mo (lowered"), "\(lowered.output)")
        }
    }

    @Test func coordinatorWithANarrowingConfigurationKeepsTheRegistryAndLogsWhy() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(TestSchema.sql)
            let path = try config(database)
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(try coordinate(path).status == 0)
            let before = try snapshot(connection)
            let older = try config(
                database,
                Self.good.replacingOccurrences(of: "min: 1d", with: "min: 1h").replacingOccurrences(
                    of: "where: \"status = 'closed'\"", with: ""))
            defer { try? FileManager.default.removeItem(atPath: older) }

            for command in ["coordinator", "run"] {
                let result = try LetheProcess.run([command, "--until-idle", "--config", older])
                #expect(result.status == 0, "\(command): \(result.output)")
                #expect(result.output.contains("refused to sync the entity-type registry"), "\(result.output)")
                #expect(result.output.contains("min changes from 1d to 1h"), "\(result.output)")
                #expect(result.output.contains("predicate (where) changes from status = 'closed' to none"))
                #expect(try snapshot(connection) == before, "\(command)")
            }
        }
    }

    /// The leader checks its file again every coordinator.registry_check_interval: a safe edit
    /// is synced, an unsafe one refused and logged; a confirmed sync made elsewhere is reported,
    /// not undone.
    @Test func runningCoordinatorRechecksItsFile() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(TestSchema.sql)
            func write(_ registry: String, to path: String? = nil) throws -> String {
                let text = """
                    database: { url: "\(database.url)" }
                    coordinator: { tick_interval: 100ms, registry_check_interval: 300ms }
                    \(registry)
                    """
                guard let path else { return try writeConfig(text) }
                try text.write(toFile: path, atomically: true, encoding: .utf8)
                return path
            }
            let path = try write(Self.good)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-\(UUID().uuidString).log")
            defer { try? FileManager.default.removeItem(at: log) }
            let coordinator = try LetheProcess.launch(["coordinator", "--config", path], log: log)
            defer { if coordinator.isRunning { kill(coordinator.processIdentifier, SIGKILL) } }
            func output() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
            func batchSize() -> Int? {
                try? connection.scalar("SELECT coalesce((SELECT batch_size FROM lethe.entity_types), 0)")
            }
            func maximum() -> String? {
                try? connection.scalar("SELECT coalesce((SELECT max_interval::text FROM lethe.entity_types), '')")
            }
            #expect(eventually(timeout: .seconds(20)) { batchSize() == 5 }, "\(output())")

            _ = try write(Self.good.replacingOccurrences(of: "batch_size: 5", with: "batch_size: 9"), to: path)
            #expect(eventually(timeout: .seconds(20)) { batchSize() == 9 }, "\(output())")

            let wider = Self.good.replacingOccurrences(of: "max: 1y", with: "max: 2y")
            _ = try write(wider, to: path)
            #expect(
                eventually(timeout: .seconds(20)) { output().contains("max changes from 1y to 2y") }, "\(output())")
            #expect(output().contains("refused to sync the entity-type registry"))
            #expect(maximum() == "1 year")

            // Someone else confirms another registry; the coordinator's file is unchanged: it
            // reports how its file differs and leaves the registry in force alone.
            let confirmed = try write(wider.replacingOccurrences(of: "batch_size: 5", with: "batch_size: 11"))
            defer { try? FileManager.default.removeItem(atPath: confirmed) }
            #expect(try LetheProcess.run(["policy", "sync", "--confirm", "--config", confirmed]).status == 0)
            #expect(maximum() == "2 years" && batchSize() == 11)
            #expect(
                eventually(timeout: .seconds(20)) { output().contains("the registry in force changed") },
                "\(output())")
            #expect(output().contains("batch_size 11 → 5"), "\(output())")
            #expect(maximum() == "2 years" && batchSize() == 11)
            coordinator.terminate()
            #expect(eventually(timeout: .seconds(15)) { !coordinator.isRunning }, "SIGTERM: \(output())")
        }
    }

    @Test func workerWithAStaleConfigurationUsesTheRegistryInForce() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(TestSchema.sql)
            let path = try config(database)
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(try coordinate(path).status == 0)
            // A file whose registry no longer matches the schema: read from it, the worker would
            // stop at once (exit 2); it reads the registry in force instead.
            let stale = try config(database, Self.good.replacingOccurrences(of: "clock: ended_at", with: "clock: gone"))
            defer { try? FileManager.default.removeItem(atPath: stale) }
            let worker = try LetheProcess.run(["worker", "--until-idle", "--config", stale])
            #expect(worker.status == 0, "\(worker.output)")
            #expect(!worker.output.contains("gone"))
            #expect(
                try connection.scalar("SELECT clock_column FROM lethe.entity_types", as: String.self) == "ended_at")
        }
    }
}
