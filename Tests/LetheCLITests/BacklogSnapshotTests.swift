import Foundation
import Postgres
import TestSupport
import Testing

/// The backlog snapshot (migration 0010): the leader refreshes it every
/// `coordinator.backlog_interval`; `lethe status --check` reads it while fresh and says so
/// when it is missing or stale.
@Suite struct BacklogSnapshotTests {
    /// The fixture's registry plus `coordinator.backlog_interval`.
    static func config(interval: String) throws -> String {
        try writeConfig(OperatorFixture.registry + "\ncoordinator:\n  backlog_interval: \(interval)\n")
    }

    /// The columns a refresh copies, snapshot minus live and live minus snapshot (no rows: equal).
    static let difference = """
        SELECT count(*)::int FROM (
            (SELECT account_id, entity_type, effective_interval, expired_rows, oldest_clock, runnable, blocked_reason, held
             FROM lethe.retention_backlog_snapshot
             EXCEPT SELECT account_id, entity_type, effective_interval, expired_rows, oldest_clock, runnable,
                           blocked_reason, held FROM lethe.retention_backlog)
            UNION ALL
            (SELECT account_id, entity_type, effective_interval, expired_rows, oldest_clock, runnable, blocked_reason, held
             FROM lethe.retention_backlog
             EXCEPT SELECT account_id, entity_type, effective_interval, expired_rows, oldest_clock, runnable,
                           blocked_reason, held FROM lethe.retention_backlog_snapshot)) d
        """

    @Test func theLeaderRefreshesTheSnapshotAndTheCheckReadsIt() async throws {
        try await OperatorFixture.with { fixture in
            let connection = try fixture.database.connect()
            defer { connection.close() }
            let path = try Self.config(interval: "10s")
            defer { try? FileManager.default.removeItem(atPath: path) }
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-\(UUID().uuidString).log")
            defer { try? FileManager.default.removeItem(at: log) }
            let coordinator = try LetheProcess.launch(
                ["coordinator", "--config", path], environment: ["LETHE_DATABASE_URL": fixture.database.url], log: log)
            defer { if coordinator.isRunning { kill(coordinator.processIdentifier, SIGKILL) } }
            func output() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
            let url = fixture.database.url
            @Sendable func snapshotRows() -> Int64? {
                guard let connection = try? Connection.connect(url) else { return nil }
                defer { connection.close() }
                return try? connection.scalar(
                    """
                    SELECT coalesce((SELECT expired_rows FROM lethe.retention_backlog_snapshot
                                     WHERE account_id = '1' AND entity_type = 'events'), -1)
                    """)
            }
            let refreshed = try await offThePool { eventually(timeout: .seconds(120)) { snapshotRows() == 40 } }
            #expect(refreshed, "\(output())")
            #expect(try connection.scalar(Self.difference, as: Int.self) == 0)
            #expect(
                try connection.scalar(
                    "SELECT refresh_interval = interval '10 seconds' AND NOT stale FROM lethe.backlog_snapshot_status",
                    as: Bool.self))

            // Ten expired rows go; the next refresh (10 s later) sees it.
            try connection.execute(
                "DELETE FROM app.events WHERE id IN (SELECT id FROM app.events ORDER BY at LIMIT 10)")
            let followed = try await offThePool { eventually(timeout: .seconds(120)) { snapshotRows() == 30 } }
            #expect(followed, "\(output())")
            #expect(try connection.scalar(Self.difference, as: Int.self) == 0)

            let check = try fixture.lethe(["status", "--check", "--max-behind", "1h"])
            #expect(check.status == 1, "\(check.output)")
            #expect(check.stdout.contains("see lethe.retention_backlog_snapshot"), "\(check.output)")
            #expect(!check.stdout.contains("BACKLOG SNAPSHOT"), "\(check.output)")
            let status = try fixture.lethe(["status"])
            #expect(
                status.stdout.contains("Retention (lethe.retention_backlog_snapshot, measured "), "\(status.output)")
            coordinator.terminate()
            #expect(try await offThePool { eventually(timeout: .seconds(30)) { !coordinator.isRunning } })
        }
    }

    @Test func checkReportsAMissingOrStaleSnapshotAndJudgesLive() async throws {
        try await OperatorFixture.with { fixture in
            let connection = try fixture.database.connect()
            defer { connection.close() }
            try fixture.registerLiveFleet(on: connection)  // refreshes the snapshot
            try connection.execute("DELETE FROM lethe.backlog_refresh")
            try connection.execute("DELETE FROM lethe.backlog_snapshot")

            let missing = try fixture.lethe(["status", "--check", "--max-behind", "1h"])
            #expect(missing.status == 1, "\(missing.output)")
            #expect(missing.stdout.contains("BACKLOG SNAPSHOT MISSING: no leader has refreshed"), "\(missing.output)")
            // Judged on the live view meanwhile.
            #expect(missing.stdout.contains("BEHIND: 1 account×type pair"), "\(missing.output)")
            #expect(
                missing.stdout.contains("see lethe.retention_backlog\n")
                    || missing.stdout.hasSuffix("see lethe.retention_backlog"), "\(missing.output)")

            // A fresh snapshot is what the check reads: rows deleted since do not count yet.
            try connection.execute("SELECT lethe.refresh_backlog_snapshot(interval '1 minute')")
            try connection.execute("DELETE FROM app.events WHERE at < now() - interval '31 days'")
            let fresh = try fixture.lethe(["status", "--check", "--max-behind", "1h"])
            #expect(fresh.status == 1 && fresh.stdout.contains("BEHIND: 1 account×type pair"), "\(fresh.output)")
            #expect(!fresh.stdout.contains("BACKLOG SNAPSHOT"), "\(fresh.output)")

            // Older than two intervals: stale, and judged live (nothing behind now).
            try connection.execute("UPDATE lethe.backlog_refresh SET measured_at = now() - interval '3 minutes'")
            let stale = try fixture.lethe(["status", "--check", "--max-behind", "1h"])
            #expect(stale.status == 1, "\(stale.output)")
            #expect(
                stale.stdout.hasPrefix("BACKLOG SNAPSHOT STALE: lethe.retention_backlog_snapshot was measured 3m"),
                "\(stale.output)")
            #expect(stale.stdout.contains("coordinator.backlog_interval (1m)"), "\(stale.output)")
            #expect(!stale.stdout.contains("BEHIND:"), "\(stale.output)")

            // Off (coordinator.backlog_interval 0): the live view, and no complaint.
            try connection.execute("SELECT lethe.disable_backlog_snapshot()")
            let off = try fixture.lethe(["status", "--check", "--max-behind", "1h"])
            #expect(off.status == 0, "\(off.output)")
            #expect(off.stdout.contains("(live backlog)"), "\(off.output)")

            // Role lethe_monitor reads the snapshot and its status.
            try connection.execute("SELECT lethe.refresh_backlog_snapshot(interval '1 minute')")
            let role = "lethe_monitor_test_" + UUID().uuidString.prefix(8).lowercased()
            try connection.execute("CREATE ROLE \(role) LOGIN IN ROLE lethe_monitor")
            defer {
                _ = try? connection.execute("REVOKE lethe_monitor FROM \(role)")
                _ = try? connection.execute("DROP ROLE IF EXISTS \(role)")
            }
            var parts = try #require(URLComponents(string: fixture.database.url))
            parts.user = role
            let monitor = try Connection.connect(try #require(parts.string))
            defer { monitor.close() }
            #expect(
                try monitor.scalar(
                    "SELECT count(*)::int FROM lethe.retention_backlog_snapshot WHERE measured_at IS NOT NULL",
                    as: Int.self) == 1)
            #expect(try monitor.scalar("SELECT NOT stale FROM lethe.backlog_snapshot_status", as: Bool.self))
        }
    }

    @Test func intervalZeroTurnsTheSnapshotOff() async throws {
        try await OperatorFixture.with { fixture in
            let connection = try fixture.database.connect()
            defer { connection.close() }
            try connection.execute("SELECT lethe.refresh_backlog_snapshot(interval '1 minute')")
            let path = try Self.config(interval: "0")
            defer { try? FileManager.default.removeItem(atPath: path) }
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-\(UUID().uuidString).log")
            defer { try? FileManager.default.removeItem(at: log) }
            let coordinator = try LetheProcess.launch(
                ["coordinator", "--config", path], environment: ["LETHE_DATABASE_URL": fixture.database.url], log: log)
            defer { if coordinator.isRunning { kill(coordinator.processIdentifier, SIGKILL) } }
            let url = fixture.database.url
            let off = try await offThePool {
                eventually(timeout: .seconds(120)) {
                    guard let connection = try? Connection.connect(url) else { return false }
                    defer { connection.close() }
                    return
                        (try? connection.scalar(
                            "SELECT coalesce((SELECT disabled FROM lethe.backlog_snapshot_status), false)",
                            as: Bool.self))
                        == true
                }
            }
            #expect(off, "\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
            #expect(try connection.scalar("SELECT count(*)::int FROM lethe.backlog_snapshot", as: Int.self) == 0)
            coordinator.terminate()
            #expect(try await offThePool { eventually(timeout: .seconds(30)) { !coordinator.isRunning } })
        }
    }

    @Test(arguments: ["5s", "2d", "soon"])
    func aBadIntervalIsRefusedNamingTheValue(_ value: String) async throws {
        let path = try Self.config(interval: value)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try LetheProcess.run(
            ["coordinator", "--config", path], environment: ["LETHE_DATABASE_URL": "postgresql://127.0.0.1:1/none"])
        #expect(result.status == 2, "\(result.output)")
        #expect(
            result.stderr.contains(
                "key coordinator.backlog_interval has the value \"\(value)\"; expected 0 (off) or a duration from 10s to 1d"
            ), "\(result.output)")
    }
}
