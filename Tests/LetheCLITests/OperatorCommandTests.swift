import Foundation
import Postgres
import TestSupport
import Testing

/// A database with one entity type (`events`, 40 rows expired for a year and 10 fresh, of
/// account 1) synced by `lethe policy sync`, for the operator commands and the monitor role.
struct OperatorFixture {
    let database: TestDatabase
    let config: String

    static let registry = """
        entity_types:
          events:
            table: app.events
            key: id
            account: account_id
            clock: at
            interval: { default: 30d, min: 1d, max: 1y }
        """

    static func with(_ body: (OperatorFixture) async throws -> Void) async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(
                """
                CREATE SCHEMA app;
                CREATE TABLE app.events (id bigserial PRIMARY KEY, account_id bigint NOT NULL, at timestamptz);
                CREATE INDEX ON app.events (account_id, at);
                INSERT INTO app.events (account_id, at)
                SELECT 1, now() - interval '400 days' + g * interval '1 minute' FROM generate_series(1, 40) g;
                INSERT INTO app.events (account_id, at) SELECT 1, now() FROM generate_series(1, 10);
                """)
            let config = try writeConfig(registry)
            defer { try? FileManager.default.removeItem(atPath: config) }
            let fixture = OperatorFixture(database: database, config: config)
            let synced = try fixture.lethe(["policy", "sync"])
            try #require(synced.status == 0, "\(synced.output)")
            try connection.execute("SELECT lethe.add_account('1')")
            try await body(fixture)
        }
    }

    func lethe(_ arguments: [String], url: String? = nil) throws -> ProcessResult {
        try LetheProcess.run(
            arguments, environment: ["LETHE_DATABASE_URL": url ?? database.url, "LETHE_CONFIG": config])
    }

    /// A fake live coordinator that leads (and has refreshed the backlog snapshot) and a fake live worker.
    func registerLiveFleet(on connection: Connection) throws {
        try connection.executeScript(
            """
            INSERT INTO lethe.workers (id, role, host, pid, version, slots, lease_seconds) VALUES
                ('00000000-0000-0000-0000-000000000001', 'coordinator', 'test', 1, 'test', 0, 3600),
                ('00000000-0000-0000-0000-000000000002', 'worker', 'test', 2, 'test', 4, 3600);
            INSERT INTO lethe.leader (process_id, host, pid) VALUES ('00000000-0000-0000-0000-000000000001', 'test', 1);
            SELECT lethe.refresh_backlog_snapshot(interval '1 hour', '00000000-0000-0000-0000-000000000001');
            """)
    }
}

/// `lethe status --check` and `--watch`, and `--json` on the listing commands.
@Suite struct StatusCheckTests {
    @Test func checkNamesEachProblemAndExitsOne() async throws {
        try await OperatorFixture.with { fixture in
            let result = try fixture.lethe(["status", "--check", "--max-behind", "1h"])
            #expect(result.status == 1, "\(result.output)")
            let lines = result.stdout.split(separator: "\n").map(String.init)
            #expect(lines.contains { $0.hasPrefix("NO LEADER: no live coordinator leads (0 alive)") }, "\(lines)")
            #expect(lines.contains { $0.hasPrefix("NO WORKER: no live worker (0 lost)") }, "\(lines)")
            // The oldest expired row is ~370 days behind a 30-day policy.
            #expect(
                lines.contains {
                    $0.hasPrefix("BEHIND: 1 account×type pair behind policy by more than 1h (worst: 1/events 36")
                }, "\(lines)")
            #expect(!lines.contains { $0.hasPrefix("DEAD") || $0.hasPrefix("OK") }, "\(lines)")
        }
    }

    @Test func checkPassesWithALiveFleetThenFailsOnADeadTask() async throws {
        try await OperatorFixture.with { fixture in
            let connection = try fixture.database.connect()
            defer { connection.close() }
            try fixture.registerLiveFleet(on: connection)
            // 370 days behind is within a 2-year bound.
            let healthy = try fixture.lethe(["status", "--check", "--max-behind", "104w"])
            #expect(healthy.status == 0, "\(healthy.output)")
            #expect(healthy.stdout.hasPrefix("OK: leader alive, 1 worker alive"), "\(healthy.output)")
            try connection.execute(
                """
                INSERT INTO lethe.tasks (kind, account_id, state, attempts, last_error, finished_at)
                VALUES ('noop', '1', 'dead', 5, 'boom', now() - interval '2 hours')
                """)
            let dead = try fixture.lethe(["status", "--check", "--max-behind", "104w"])
            #expect(dead.status == 1, "\(dead.output)")
            #expect(dead.stdout.hasPrefix("DEAD: 1 dead task (noop 1; oldest died 2h"), "\(dead.output)")
            #expect(dead.stdout.split(separator: "\n").count == 1, "\(dead.output)")
            let json = try fixture.lethe(["status", "--check", "--json", "--max-behind", "104w"])
            let document = try #require(
                try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any], "\(json.output)")
            #expect(json.status == 1 && document["ok"] as? Bool == false)
            #expect((document["facts"] as? [String: Any])?["dead_tasks"] as? Int == 1, "\(json.stdout)")
        }
    }

    @Test func badDurationsAreRefusedNamingTheValue() async throws {
        let result = try LetheProcess.run(["status", "--check", "--max-behind", "3 months"])
        #expect(result.status == 64 || result.status == 2, "\(result.output)")
        #expect(result.stderr.contains("--max-behind 3 months is not a positive duration"), "\(result.output)")
        let interval = try LetheProcess.run(["status", "--interval", "5s"])
        #expect(interval.stderr.contains("--interval applies to --watch only"), "\(interval.output)")
    }

    @Test func watchPrintsReportAfterReportToAPipe() async throws {
        try await OperatorFixture.with { fixture in
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-watch-\(UUID()).log")
            defer { try? FileManager.default.removeItem(at: log) }
            let process = try LetheProcess.launch(
                ["status", "--watch", "--interval", "1s"], environment: ["LETHE_DATABASE_URL": fixture.database.url],
                log: log)
            defer { if process.isRunning { process.terminate() } }
            let twice = try await offThePool {
                eventually(timeout: .seconds(120)) {
                    let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                    return text.components(separatedBy: "Queue: empty").count > 2
                }
            }
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            #expect(twice, "\(text)")
            #expect(!text.contains("\u{1B}["), "no terminal escapes into a pipe")
            #expect(process.isRunning, "--watch runs until interrupted")
        }
    }

    @Test func listingCommandsPrintJSON() async throws {
        try await OperatorFixture.with { fixture in
            let connection = try fixture.database.connect()
            defer { connection.close() }
            try connection.execute(
                "INSERT INTO lethe.tasks (kind, account_id, entity_type, state) VALUES ('noop', '1', 'events', 'available')"
            )
            func json(_ arguments: [String]) throws -> Any {
                let result = try fixture.lethe(arguments + ["--json"])
                try #require(result.status == 0, "\(result.output)")
                return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
            }
            let tasks = try #require(try json(["task", "list"]) as? [[String: Any]])
            #expect(tasks.count == 1 && tasks[0]["id"] is Int && tasks[0]["state"] as? String == "available")
            #expect(tasks[0]["account_id"] as? String == "1" && tasks[0]["entity_type"] as? String == "events")
            let runAt = try #require(tasks[0]["run_at"] as? String)
            #expect(ISO8601DateFormatter().date(from: runAt) != nil, "\(runAt)")

            let files = try #require(try json(["archive", "list"]) as? [Any])
            #expect(files.isEmpty)

            let account = try #require(try json(["account", "show", "1"]) as? [String: Any])
            let policies = try #require(account["policies"] as? [[String: Any]])
            #expect(account["account_id"] as? String == "1")
            #expect(policies.count == 1 && policies[0]["entity_type"] as? String == "events")
            #expect(
                policies[0]["effective_interval"] as? String == "30 days" && policies[0]["runnable"] as? Bool == true)

            let preview = try #require(try json(["policy", "preview", "--account", "1"]) as? [String: Any])
            let types = try #require(preview["entity_types"] as? [[String: Any]])
            #expect(types.count == 1 && types[0]["rows_now"] as? Int == 40, "\(preview)")
            #expect((types[0]["tables"] as? [[String: Any]])?.first?["rows"] as? Int == 40)
        }
    }
}

/// Role `lethe_monitor` (migration 0009): reads every view in schema lethe, the backlog
/// included, without privileges on the application's tables; writes nothing.
@Suite struct MonitorRoleTests {
    @Test func aMonitorLoginReadsEveryViewAndWritesNothing() async throws {
        try await OperatorFixture.with { fixture in
            let owner = try fixture.database.connect()
            defer { owner.close() }
            let role = "lethe_monitor_test_" + UUID().uuidString.prefix(8).lowercased()
            try owner.execute("CREATE ROLE \(role) LOGIN IN ROLE lethe_monitor")
            defer {
                _ = try? owner.execute("REVOKE lethe_monitor FROM \(role)")
                _ = try? owner.execute("DROP ROLE IF EXISTS \(role)")
            }
            var parts = try #require(URLComponents(string: fixture.database.url))
            parts.user = role
            let url = try #require(parts.string)
            let monitor = try Connection.connect(url)
            defer { monitor.close() }

            // Every view in the schema, from the catalog: a view a later migration adds without
            // granting it fails here.
            let views = try owner.query(
                """
                SELECT c.oid::regclass::text FROM pg_class c
                WHERE c.relnamespace = 'lethe'::regnamespace AND c.relkind IN ('v', 'm') ORDER BY 1
                """
            ).map { try $0.decode(String.self, at: 0) }
            #expect(views.contains("lethe.retention_backlog") && views.contains("lethe.upcoming_deletions"))
            #expect(views.count >= 11, "\(views)")
            for view in views {
                #expect(throws: Never.self, "\(view)") { _ = try monitor.query("SELECT * FROM \(view) LIMIT 5") }
            }
            // The backlog's dynamic SQL reached app.events as its owner.
            #expect(
                try monitor.scalar(
                    "SELECT expired_rows FROM lethe.retention_backlog WHERE account_id = '1'", as: Int64.self) == 40)

            func refused(_ sql: String) -> Bool {
                do {
                    _ = try monitor.query(sql)
                    return false
                } catch let error as PostgresError {
                    return error.sqlState == .insufficientPrivilege
                } catch {
                    return false
                }
            }
            #expect(refused("SELECT count(*) FROM app.events"), "the application's table")
            #expect(refused("SELECT * FROM lethe.retention_backlog_rows()") == false, "granted")
            for sql in [
                "DELETE FROM lethe.tasks", "UPDATE lethe.entity_types SET backlog_sql = 'SELECT 1'",
                "INSERT INTO lethe.holds (account_id, reason, placed_by) VALUES ('1', 'x', 'x')",
                "DELETE FROM lethe.failures", "SELECT lethe.add_account('2')",
                "SELECT lethe.approve_archive_deletion(1)",
                "SELECT lethe.retry_archive(1)", "SELECT lethe.place_hold('1', NULL, 'x', NULL)",
                "SELECT lethe.set_policy('1', 'events', '1 day')", "SELECT lethe.forget_entity_type('events')",
                "SELECT lethe.grant_monitor()", "SELECT lethe.runs_due_now('1')",
            ] {
                #expect(refused(sql), "\(sql)")
            }
            // No write privilege on any relation of the schema.
            let writable = try owner.query(
                """
                SELECT c.oid::regclass::text FROM pg_class c
                WHERE c.relnamespace = 'lethe'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
                  AND has_table_privilege($1, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
                """, [role]
            ).map { try $0.decode(String.self, at: 0) }
            #expect(writable.isEmpty, "\(writable)")
            // Every function that runs as its owner and the monitor may call only reads: not
            // VOLATILE (PostgreSQL refuses writes inside STABLE functions), or a trigger function
            // (callable only as a trigger).
            let definers = try owner.query(
                """
                SELECT p.oid::regprocedure::text FROM pg_proc p
                WHERE p.pronamespace = 'lethe'::regnamespace AND p.prosecdef AND p.provolatile = 'v'
                  AND p.prorettype <> 'trigger'::regtype AND has_function_privilege($1, p.oid, 'EXECUTE')
                """, [role]
            ).map { try $0.decode(String.self, at: 0) }
            #expect(definers.isEmpty, "\(definers)")

            // The probe runs as the monitor.
            let check = try fixture.lethe(["status", "--check", "--max-behind", "1h"], url: url)
            #expect(check.status == 1 && check.stdout.contains("BEHIND: 1 account×type pair"), "\(check.output)")
        }
    }

    @Test func grantMonitorIsIdempotentAndCountsTheViews() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            let views = try connection.scalar(
                "SELECT count(*)::int FROM pg_class WHERE relnamespace = 'lethe'::regnamespace AND relkind IN ('v', 'm')",
                as: Int.self)
            #expect(try connection.scalar("SELECT lethe.grant_monitor()", as: Int.self) == views)
            #expect(try connection.scalar("SELECT lethe.grant_monitor()", as: Int.self) == views)
            #expect(
                try connection.scalar("SELECT pg_has_role('lethe_operator', 'lethe_monitor', 'MEMBER')", as: Bool.self))
        }
    }
}
