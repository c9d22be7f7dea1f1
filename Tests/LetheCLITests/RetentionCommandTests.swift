import Foundation
import Postgres
import Retention
import TestSupport
import Testing

@testable import LetheConfiguration

/// The registry section of the configuration file, without a database.
@Suite struct RegistryConfigurationTests {
    static let good = """
        blob_stores:
          blobs: { table: app.blobs, account: account_id }
        entity_types:
          conversations:
            table: app.conv
            account: account_id
            clock: ended_at
            where: "status = 'closed'"
            interval: { default: 30d, min: 1d, max: 1y }
            batch_size: 5
            blobs: [ { column: rec } ]
            children:
              - table: app.msg
                parent: conv_id
                children:
                  - { table: app.att, parent: msg_id, blobs: [ { column: blob_id } ] }
        """

    func refusal(_ yaml: String) -> String {
        do {
            _ = try Configuration.parse(yaml, source: "lethe.yml")
            return "accepted"
        } catch {
            return error.description
        }
    }

    @Test func readsTheTree() throws {
        let registry = try Configuration.parse(Self.good, source: "lethe.yml").registry
        let type = try #require(registry.entityType(named: "conversations"))
        #expect(type.table.description == "app.conv" && type.key == ["id"] && type.batchSize == 5)
        #expect(type.bounds.maximum.description == "1y")
        #expect(type.allChildren.map(\.table.name) == ["msg", "att"])
        #expect(type.allChildren[1].blobs.first?.store == "blobs")
        #expect(registry.references(to: "blobs").map(\.column) == ["rec", "blob_id"])
    }

    @Test func keysAndParentsMayBeColumnLists() throws {
        let yaml = Self.good.replacingOccurrences(
            of: "    table: app.conv\n", with: "    table: app.conv\n    key: [account_id, id]\n"
        )
        .replacingOccurrences(of: "parent: conv_id", with: "parent: [account_id, conv_id]")
        let registry = try Configuration.parse(yaml, source: "lethe.yml").registry
        let type = try #require(registry.entityType(named: "conversations"))
        #expect(type.key == ["account_id", "id"])
        #expect(type.children[0].parent == ["account_id", "conv_id"])
        for (bad, message) in [
            ("key: []", "key entity_types.conversations.key: is an empty list"),
            ("key: [id, id]", "lists a column twice: id, id"),
            ("key: [id, \"a;b\"]", "the column name \"a;b\" is not allowed"),
            ("key: { a: b }", "must be a column name or a list of column names"),
        ] {
            let text = Self.good.replacingOccurrences(
                of: "    table: app.conv\n", with: "    table: app.conv\n    \(bad)\n")
            #expect(throws: UsageError.self) { try Configuration.parse(text, source: "lethe.yml").registry }
            do {
                _ = try Configuration.parse(text, source: "lethe.yml").registry
            } catch { #expect("\(error)".contains(message), "\(bad): \(error)") }
        }
    }

    @Test func badValuesAreNamedByKeyPath() {
        let duration = refusal(Self.good.replacingOccurrences(of: "default: 30d", with: "default: 30 days"))
        #expect(duration.contains("key entity_types.conversations.interval.default: has the value \"30 days\""))
        #expect(duration.contains("6mo"))
        let above = refusal(Self.good.replacingOccurrences(of: "default: 30d", with: "default: 2y"))
        #expect(above.contains("key entity_types.conversations.interval: default 2y is outside min 1d … max 1y"))
        let unknown = refusal(Self.good.replacingOccurrences(of: "batch_size: 5", with: "batchsize: 5"))
        #expect(
            unknown.contains("key entity_types.conversations.batchsize: unknown key; accepted: account, batch_size"))
        let store = refusal(
            Self.good.replacingOccurrences(of: "{ column: rec }", with: "{ column: rec, store: files }"))
        #expect(store.contains("key entity_types.conversations.blobs[0].store: no blob store named \"files\""))
        let name = refusal(Self.good.replacingOccurrences(of: "  conversations:", with: "  Conversations:"))
        #expect(name.contains("the name \"Conversations\" is not allowed"))
    }

    @Test func injectionAttemptsInIdentifiersAndPredicatesAreRefused() {
        let table = refusal(
            Self.good.replacingOccurrences(of: "table: app.conv", with: "table: \"app.conv; DROP TABLE app.msg\""))
        #expect(
            table.contains(
                "key entity_types.conversations.table: the table name \"app.conv; DROP TABLE app.msg\" is not allowed"))
        let column = refusal(
            Self.good.replacingOccurrences(of: "parent: conv_id", with: "parent: 'conv_id\" OR true --'"))
        #expect(column.contains("key entity_types.conversations.children[0].parent: the column name"))
        for predicate in [
            "true) OR (1=1", "true; DELETE FROM app.conv", "true -- rest", "account_id = $1", "'a' = E'\\\\'",
        ] {
            let refused = refusal(
                Self.good.replacingOccurrences(
                    of: "\"status = 'closed'\"", with: "\"\(predicate.replacingOccurrences(of: "\"", with: "\\\""))\""))
            #expect(refused.contains("key entity_types.conversations.where: the predicate"), "\(predicate): \(refused)")
        }
    }
}

/// `lethe account|policy|run` against a real database with the test schema.
@Suite struct RetentionCommandTests {
    func config(_ database: TestDatabase, _ registry: String = RegistryConfigurationTests.good) throws -> String {
        try writeConfig(
            """
            database: { url: "\(database.url)" }
            coordinator: { tick_interval: 200ms }
            worker: { poll_interval: 200ms, concurrency: 4 }
            \(registry)
            """)
    }

    @Test func badRegistryExitsTwoNamingTheKeyAndChangesNothing() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(TestSchema.sql)
            let good = try config(database)
            defer { try? FileManager.default.removeItem(atPath: good) }
            let synced = try LetheProcess.run(["policy", "sync", "--config", good])
            #expect(synced.status == 0, "\(synced.output)")
            let types = try LetheProcess.run(["policy", "types", "--config", good])
            #expect(types.stdout.contains("conversations  app.conv"), "\(types.output)")
            #expect(types.stdout.contains("matches the registry in force"), "\(types.output)")

            let cases: [(String, String, String)] = [
                (
                    "clock: ended_at", "clock: finished_at",
                    "key entity_types.conversations.clock: table app.conv has no column \"finished_at\"; its columns: id, account_id, ended_at"
                ),
                (
                    "where: \"status = 'closed'\"", "where: \"stauts = 'closed'\"",
                    "key entity_types.conversations.where: the database refused the eligibility filter: column \"stauts\" does not exist"
                ),
                (
                    "where: \"status = 'closed'\"", "where: \"status\"",
                    "must be type boolean"
                ),
                (
                    "table: app.msg", "table: app.messages",
                    "key entity_types.conversations.children[0].table: table app.messages does not exist"
                ),
                (
                    "clock: ended_at", "clock: status",
                    "column app.conv.status is text; expected timestamp with time zone"
                ),
                ("table: app.conv", "table: \"app.conv; DROP TABLE app.msg\"", "is not allowed"),
            ]
            for (from, to, message) in cases {
                let bad = try config(database, RegistryConfigurationTests.good.replacingOccurrences(of: from, with: to))
                defer { try? FileManager.default.removeItem(atPath: bad) }
                let result = try LetheProcess.run(["policy", "types", "--config", bad])
                #expect(result.status == 2, "\(to): \(result.output)")
                #expect(result.stderr.contains(message), "\(to): \(result.stderr)")
                #expect(result.stderr.contains(bad))
            }
            // Nothing changed: the registry row and the application's tables are as before.
            let (clock, predicate): (String, String?) = try connection.query(
                "SELECT clock_column, predicate FROM lethe.entity_types WHERE name = 'conversations'")[0].decode(
                    (String, String?).self)
            #expect(clock == "ended_at" && predicate == "status = 'closed'")
            #expect(try connection.scalar("SELECT to_regclass('app.msg') IS NOT NULL", as: Bool.self))

            // An unknown entity type or a bad interval on the command line: exit 2, named.
            #expect(try LetheProcess.run(["account", "add", "1", "--config", good]).status == 0)
            let unknown = try LetheProcess.run(
                ["policy", "set", "--account", "1", "--type", "calls", "--interval", "30d", "--config", good])
            #expect(unknown.status == 2)
            #expect(unknown.stderr.contains("no entity type \"calls\"; configured: conversations"))
            let interval = try LetheProcess.run(
                ["policy", "set", "--account", "1", "--type", "conversations", "--interval", "2y", "--config", good])
            #expect(interval.status == 2)
            #expect(interval.stderr.contains("interval 2 years for conversations is above the maximum 1 year"))
            let raised = try LetheProcess.run(
                ["policy", "set", "--account", "1", "--type", "conversations", "--interval", "6h", "--config", good])
            #expect(raised.status == 0)
            #expect(raised.stdout.contains("6h is below the minimum for conversations: raised to 1d"))
        }
    }

    /// For randomly generated tenants, intervals and data, `lethe run --until-idle` deletes
    /// exactly the expired, eligible rows of each account (with their children and the
    /// blobs only they referenced) and nothing else, checked row by row.
    @Test(arguments: [11, 23, 37])
    func randomTenantsLoseExactlyTheirExpiredRows(seed: Int) async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(TestSchema.sql)
            let path = try config(database)
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(try LetheProcess.run(["policy", "sync", "--config", path]).status == 0)

            var random = SeededGenerator(seed: UInt64(seed))
            let tenants = Int.random(in: 3...6, using: &random)
            let choices = ["1 day", "7 days", "30 days", "2 mons", "6 mons", "1 year"]
            var nextID: Int64 = 1
            for account in 1...tenants {
                try connection.execute("SELECT lethe.add_account($1)", ["\(account)"])
                try connection.execute(
                    "SELECT lethe.set_policy($1, 'conversations', $2::interval)",
                    ["\(account)", choices.randomElement(using: &random)!])
                for _ in 0..<Int.random(in: 10...60, using: &random) {
                    let id = nextID
                    nextID += 1
                    let age: Double? =
                        Double.random(in: 0..<1) < 0.08 ? nil : Double.random(in: 0...500, using: &random)
                    let status = Double.random(in: 0..<1, using: &random) < 0.1 ? "open" : "closed"
                    try connection.execute(
                        "INSERT INTO app.blobs (id, account_id) VALUES ($1, $2)", [id * 100, account])
                    try connection.execute(
                        "INSERT INTO app.conv VALUES ($1, $2, now() - $3 * interval '1 day', $4, $5)",
                        [id, account, age, status, id * 100])
                    for m in 0..<Int64(Int.random(in: 0...3, using: &random)) {
                        let message = id * 10 + m
                        try connection.execute("INSERT INTO app.msg VALUES ($1, $2)", [message, id])
                        // Attachments: their own blob, or (sometimes) the conversation's recording, shared.
                        let shared = Bool.random(using: &random)
                        if !shared {
                            try connection.execute(
                                "INSERT INTO app.blobs (id, account_id) VALUES ($1, $2)",
                                [10_000_000 + message, account])
                        }
                        try connection.execute(
                            "INSERT INTO app.att VALUES ($1, $2, $3)",
                            [message, message, shared ? id * 100 : 10_000_000 + message])
                    }
                }
                // Some orphans: untouched by retention (orphan GC has a 7-day grace).
                try connection.execute(
                    "INSERT INTO app.blobs (id, account_id) SELECT 90000000 + $1 * 100 + g, $1 FROM generate_series(1, 3) g",
                    [account])
            }
            // Keep clear of the boundary: nothing within two hours of its account's cutoff.
            try connection.executeScript(
                """
                CREATE TEMP TABLE near AS
                SELECT c.id FROM app.conv c JOIN lethe.retention_status s ON s.account_id = c.account_id::text
                WHERE s.entity_type = 'conversations' AND abs(extract(epoch FROM c.ended_at - s.cutoff)) < 7200;
                DELETE FROM app.att WHERE msg_id IN (SELECT m.id FROM app.msg m WHERE m.conv_id IN (SELECT id FROM near));
                DELETE FROM app.msg WHERE conv_id IN (SELECT id FROM near);
                DELETE FROM app.conv WHERE id IN (SELECT id FROM near);
                """)
            // The expectation, computed before the run from each account's cutoff.
            try connection.executeScript(
                """
                CREATE TABLE expired AS
                SELECT c.id FROM app.conv c JOIN lethe.retention_status s ON s.account_id = c.account_id::text
                WHERE s.entity_type = 'conversations' AND c.status = 'closed' AND c.ended_at < s.cutoff;
                CREATE TABLE kept_conv AS SELECT id FROM app.conv WHERE id NOT IN (SELECT id FROM expired);
                CREATE TABLE kept_msg AS SELECT id FROM app.msg WHERE conv_id IN (SELECT id FROM kept_conv);
                CREATE TABLE kept_blobs AS
                SELECT b.id FROM app.blobs b
                WHERE EXISTS (SELECT 1 FROM app.conv c WHERE c.rec = b.id AND c.id IN (SELECT id FROM kept_conv))
                   OR EXISTS (SELECT 1 FROM app.att a WHERE a.blob_id = b.id AND a.msg_id IN (SELECT id FROM kept_msg))
                   OR (NOT EXISTS (SELECT 1 FROM app.conv c WHERE c.rec = b.id)
                       AND NOT EXISTS (SELECT 1 FROM app.att a WHERE a.blob_id = b.id));
                """)
            let expiredCount: Int = try connection.scalar("SELECT count(*) FROM expired")

            let run = try LetheProcess.run(["run", "--until-idle", "--config", path])
            #expect(run.status == 0, "\(run.output)")

            func differ(_ table: String, _ expected: String) throws -> Int {
                try connection.scalar(
                    """
                    SELECT count(*) FROM ((SELECT id FROM \(table) EXCEPT SELECT id FROM \(expected))
                                          UNION ALL (SELECT id FROM \(expected) EXCEPT SELECT id FROM \(table))) d
                    """)
            }
            #expect(try differ("app.conv", "kept_conv") == 0, "seed \(seed)")
            #expect(try differ("app.msg", "kept_msg") == 0, "seed \(seed)")
            #expect(try differ("app.att", "kept_msg") == 0, "seed \(seed)")
            #expect(try differ("app.blobs", "kept_blobs") == 0, "seed \(seed)")
            #expect(
                try connection.scalar("SELECT coalesce(sum(root_rows), 0)::int FROM lethe.deletion_log", as: Int.self)
                    == expiredCount)
            #expect(
                try connection.scalar("SELECT count(*) FROM lethe.tasks WHERE state <> 'succeeded'", as: Int.self) == 0)

            // A second run deletes nothing.
            try connection.execute("UPDATE lethe.retention_runs SET next_run_at = now()")
            let before: Int = try connection.scalar("SELECT coalesce(sum(total_rows), 0)::int FROM lethe.deletion_log")
            let again = try LetheProcess.run(["run", "--until-idle", "--config", path])
            #expect(again.status == 0, "\(again.output)")
            #expect(
                try connection.scalar("SELECT coalesce(sum(total_rows), 0)::int FROM lethe.deletion_log", as: Int.self)
                    == before)
            #expect(try differ("app.conv", "kept_conv") == 0)
        }
    }
}

/// Crash safety: `kill -9` of a worker in the middle of deleting.
@Suite struct RetentionCrashTests {
    @Test func killedWorkerLosesNothingUnexpiredAndTheWorkCompletesOnTheNextClaim() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(TestSchema.sql)
            let path = try writeConfig(
                """
                database: { url: "\(database.url)" }
                coordinator: { tick_interval: 200ms, rescue_interval: 500ms }
                worker: { poll_interval: 200ms, concurrency: 2, lease: 2s, heartbeat_interval: 500ms, task_budget: 1h }
                retention: { max_batches: 100000 }
                \(RegistryConfigurationTests.good.replacingOccurrences(of: "batch_size: 5", with: "batch_size: 10"))
                """)
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(try LetheProcess.run(["policy", "sync", "--config", path]).status == 0)
            #expect(try LetheProcess.run(["account", "add", "1", "2", "--config", path]).status == 0)
            // 20,000 expired conversations (2 messages, 2 attachments, 3 blobs each) and 500 recent ones, per account.
            try connection.executeScript(
                """
                INSERT INTO app.blobs (id, account_id) SELECT g, 1 + ((g + 2) / 3) % 2 FROM generate_series(1, 41000 * 3) g;
                INSERT INTO app.conv (id, account_id, ended_at, rec)
                SELECT g, 1 + g % 2, now() - CASE WHEN g <= 40000 THEN 40 + g % 300 ELSE g % 20 END * interval '1 day',
                       g * 3 - 2
                FROM generate_series(1, 41000) g;
                INSERT INTO app.msg (id, conv_id) SELECT g * 2 - m, g FROM generate_series(1, 41000) g, generate_series(0, 1) m;
                INSERT INTO app.att (id, msg_id, blob_id)
                SELECT m.id, m.id, (m.conv_id * 3 - 1) + (m.id % 2) FROM app.msg m;
                CREATE TABLE recent AS SELECT id FROM app.conv WHERE id > 40000;
                """)
            let runner = try LetheProcess.start(["run", "--config", path])
            defer { if runner.0.isRunning { kill(runner.0.processIdentifier, SIGKILL) } }
            // Kill it while it deletes: after some batches, long before 4,000 batches are done.
            let started = eventually(timeout: .seconds(60)) {
                (try? connection.scalar("SELECT count(*) FROM lethe.deletion_records", as: Int.self)) ?? 0 >= 20
            }
            #expect(started)
            kill(runner.0.processIdentifier, SIGKILL)
            runner.0.waitUntilExit()
            let partial: Int = try connection.scalar("SELECT count(*) FROM app.conv WHERE id <= 40000")
            #expect(partial > 0, "the run finished before the kill; the test proves nothing")
            // At the kill: every recent conversation is whole, and the log matches what is gone.
            #expect(try connection.scalar("SELECT count(*) FROM app.conv WHERE id > 40000", as: Int.self) == 1000)
            #expect(
                try connection.scalar("SELECT count(*) FROM app.msg WHERE conv_id > 40000", as: Int.self) == 2000)
            #expect(
                try connection.scalar("SELECT coalesce(sum(root_rows), 0)::int FROM lethe.deletion_log", as: Int.self)
                    == 40000 - partial)
            // A conversation is deleted whole or not at all.
            #expect(
                try connection.scalar(
                    "SELECT count(*) FROM app.conv c WHERE (SELECT count(*) FROM app.msg m WHERE m.conv_id = c.id) <> 2",
                    as: Int.self) == 0)

            // The next run takes the task over once its lease expires, and finishes it.
            let next = try LetheProcess.run(["run", "--until-idle", "--config", path])
            #expect(next.status == 0, "\(next.output)")
            #expect(try connection.scalar("SELECT count(*) FROM app.conv", as: Int.self) == 1000)
            #expect(
                try connection.scalar("SELECT count(*) FROM app.conv WHERE id IN (SELECT id FROM recent)", as: Int.self)
                    == 1000)
            #expect(try connection.scalar("SELECT count(*) FROM app.msg", as: Int.self) == 2000)
            #expect(try connection.scalar("SELECT count(*) FROM app.blobs", as: Int.self) == 3000)
            #expect(try connection.scalar("SELECT sum(root_rows)::int FROM lethe.deletion_log", as: Int.self) == 40000)
            #expect(
                try connection.scalar(
                    "SELECT count(*) FROM lethe.tasks WHERE kind = 'retention' AND state = 'succeeded' AND attempts >= 2",
                    as: Int.self) >= 1)
        }
    }
}
