import Foundation
import Postgres
import TestSupport
import Testing

/// The reproduction of issue 14's first defect, as a new user would run it: a table whose
/// ids restart per tenant (`PRIMARY KEY (account_id, id)`), configured with `key: id`.
@Suite struct TenantKeyCommandTests {
    static let schema = """
        CREATE SCHEMA app;
        CREATE TABLE app.t (account_id bigint, id bigint, closed_at timestamptz, PRIMARY KEY (account_id, id));
        CREATE TABLE app.t_notes (account_id bigint, t_id bigint, note text);
        INSERT INTO app.t VALUES (1, 7, now() - interval '3 years'), (2, 7, now());
        INSERT INTO app.t_notes VALUES (1, 7, 'old'), (2, 7, 'new');
        """

    func config(_ database: TestDatabase, parent: String) throws -> String {
        try writeConfig(
            """
            database: { url: "\(database.url)" }
            coordinator: { tick_interval: 200ms }
            worker: { poll_interval: 200ms }
            entity_types:
              things:
                table: app.t
                key: id
                account: account_id
                clock: closed_at
                interval: { default: 1y, min: 1d, max: 5y }
                children:
                  - { table: app.t_notes, parent: \(parent) }
            """)
    }

    @Test func aKeyUniqueOnlyPerTenantDeletesOnlyTheTenantsRow() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(Self.schema)
            // One column cannot name a row whose key is (account_id, id): refused, naming the key path.
            let narrow = try config(database, parent: "t_id")
            defer { try? FileManager.default.removeItem(atPath: narrow) }
            let refused = try LetheProcess.run(["policy", "sync", "--config", narrow])
            #expect(refused.status == 2, "\(refused.output)")
            #expect(
                refused.stderr.contains(
                    "key entity_types.things.children[0].parent: lists 1 column (t_id), but the key of app.t has 2: (account_id bigint, id bigint)"
                ), "\(refused.output)")
            #expect(try connection.scalar("SELECT count(*) FROM lethe.entity_types", as: Int.self) == 0)

            let path = try config(database, parent: "[account_id, t_id]")
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(try LetheProcess.run(["policy", "sync", "--config", path]).status == 0)
            #expect(try LetheProcess.run(["account", "add", "1", "2", "--config", path]).status == 0)
            let run = try LetheProcess.run(["run", "--until-idle", "--config", path])
            #expect(run.status == 0, "\(run.output)")
            let left = try connection.query(
                "SELECT account_id || ':' || id FROM app.t UNION ALL SELECT 'note ' || note FROM app.t_notes ORDER BY 1"
            ).map { try $0.decode(String.self, at: 0) }
            #expect(left == ["2:7", "note new"])
            #expect(try connection.scalar("SELECT sum(total_rows)::int FROM lethe.deletion_log", as: Int.self) == 2)
        }
    }

    /// Issue 14, defect 11: a person becomes eligible only once the last conversation that
    /// refers to them is gone. One `run --until-idle` must take both: when a batch deletes,
    /// the account's other types are checked again at once.
    @Test func untilIdleLeavesNothingEligibleBehindRowsThatReferredToIt() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(
                """
                CREATE SCHEMA app;
                CREATE TABLE app.persons (id bigint PRIMARY KEY, account_id bigint, seen_at timestamptz);
                CREATE TABLE app.convs (id bigint PRIMARY KEY, account_id bigint, person_id bigint, ended_at timestamptz);
                INSERT INTO app.persons SELECT g, 1, now() - interval '3 years' FROM generate_series(1, 5) g;
                INSERT INTO app.convs SELECT g, 1, 1 + g % 5, now() - interval '2 years' FROM generate_series(1, 300) g;
                """)
            let path = try writeConfig(
                """
                database: { url: "\(database.url)" }
                coordinator: { tick_interval: 100ms }
                worker: { poll_interval: 100ms, concurrency: 2, task_budget: 200ms }
                retention: { max_batches: 3 }
                entity_types:
                  persons:
                    table: app.persons
                    account: account_id
                    clock: seen_at
                    where: "NOT EXISTS (SELECT 1 FROM app.convs c WHERE c.person_id = r.id)"
                    interval: { default: 1y, min: 1d, max: 5y }
                  convs:
                    table: app.convs
                    account: account_id
                    clock: ended_at
                    interval: { default: 1y, min: 1d, max: 5y }
                    batch_size: 5
                """)
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(try LetheProcess.run(["policy", "sync", "--config", path]).status == 0)
            #expect(try LetheProcess.run(["account", "add", "1", "--config", path]).status == 0)
            let run = try LetheProcess.run(["run", "--until-idle", "--config", path])
            #expect(run.status == 0, "\(run.output)")
            #expect(try connection.scalar("SELECT count(*) FROM app.convs", as: Int.self) == 0)
            #expect(try connection.scalar("SELECT count(*) FROM app.persons", as: Int.self) == 0)
        }
    }
}
