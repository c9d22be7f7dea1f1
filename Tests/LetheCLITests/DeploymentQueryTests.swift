import Foundation
import Postgres
import TestSupport
import Testing

/// The SQL that ships outside the binary: every query of the Grafana dashboard
/// (deploy/grafana) and the KEDA trigger's (deploy/kubernetes/scaledobject.yaml) runs on a
/// migrated database holding the example application after a retention run.
@Suite struct DeploymentQueryTests {
    static let root = Repository.root()
    static let dashboardPath = root.appendingPathComponent("deploy/grafana/lethe-dashboard.json")

    /// One query target of the dashboard.
    struct Target: Sendable {
        var panel: String
        var sql: String
    }

    static func dashboard() throws -> [String: Any] {
        let data = try Data(contentsOf: dashboardPath)
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func targets() throws -> [Target] {
        let panels = try #require(try dashboard()["panels"] as? [[String: Any]])
        return try panels.flatMap { panel in
            let title = panel["title"] as? String ?? "?"
            let targets = try #require(panel["targets"] as? [[String: Any]], "panel \(title) has no targets")
            return try targets.map { target in
                Target(panel: title, sql: try #require(target["rawSql"] as? String, "panel \(title) has no rawSql"))
            }
        }
    }

    /// Grafana's PostgreSQL macros as Grafana expands them, over [from, to]. Any other `$__`
    /// macro is left in place, so the query fails: add it here when the dashboard uses it.
    static func expand(_ sql: String, from: String, to: String) -> String {
        var text = sql.replacingOccurrences(of: "$__timeFrom()", with: "'\(from)'")
            .replacingOccurrences(of: "$__timeTo()", with: "'\(to)'")
        func replaceCalls(_ name: String, _ expansion: ([String]) -> String) {
            while let start = text.range(of: "$__\(name)(") {
                guard let close = text[start.upperBound...].firstIndex(of: ")") else { return }
                let arguments = text[start.upperBound..<close].split(separator: ",").map {
                    $0.trimmingCharacters(in: .whitespaces)
                }
                text.replaceSubrange(start.lowerBound...close, with: expansion(arguments))
            }
        }
        replaceCalls("timeFilter") { "\($0[0]) BETWEEN '\(from)' AND '\(to)'" }
        replaceCalls("timeGroupAlias") { arguments in
            "floor(extract(epoch from \(arguments[0]))/\(seconds(arguments[1])))*\(seconds(arguments[1])) AS \"time\""
        }
        return text
    }

    /// A Grafana interval argument (`'5m'`) in seconds.
    static func seconds(_ interval: String) -> Int {
        let text = interval.trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        guard let unit = text.last, let factor = units[unit], let value = Int(text.dropLast()) else { return 0 }
        return value * factor
    }

    /// The `query: >-` block of the ScaledObject's trigger, folded as YAML folds it.
    static func kedaQuery() throws -> String {
        let text = try String(
            contentsOf: root.appendingPathComponent("deploy/kubernetes/scaledobject.yaml"), encoding: .utf8)
        let lines = text.components(separatedBy: "\n")
        let start = try #require(lines.firstIndex { $0.trimmingCharacters(in: .whitespaces) == "query: >-" })
        let indent = lines[start].prefix { $0 == " " }.count
        let body = lines[(start + 1)...].prefix { line in
            line.prefix { $0 == " " }.count > indent && !line.trimmingCharacters(in: .whitespaces).isEmpty
        }
        return body.map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
    }

    @Test func dashboardHasThePanelsOperatorsNeed() throws {
        let dashboard = try Self.dashboard()
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        let titles = Set(panels.compactMap { $0["title"] as? String })
        for title in [
            "Queue depth by state", "Workers alive", "Failures", "Behind policy", "Backup files failing",
            "Backup log", "Rows deleted", "Deletion rate", "Backlog snapshot",
        ] {
            #expect(titles.contains(title), "the dashboard has no panel \(title)")
        }
        for panel in panels {
            let source = panel["datasource"] as? [String: Any]
            #expect(source?["type"] as? String == "grafana-postgresql-datasource", "\(panel["title"] ?? "?")")
        }
        #expect(try Self.targets().count >= panels.count)
    }

    @Test func macrosExpandAsGrafanaDoes() {
        let sql =
            "SELECT $__timeGroupAlias(t.at, '5m'), 1 FROM x WHERE $__timeFilter(t.at) AND $__timeTo() > $__timeFrom()"
        #expect(
            Self.expand(sql, from: "A", to: "B")
                == "SELECT floor(extract(epoch from t.at)/300)*300 AS \"time\", 1 FROM x "
                + "WHERE t.at BETWEEN 'A' AND 'B' AND 'B' > 'A'")
        #expect(Self.expand("$__unixEpochFilter(t)", from: "A", to: "B").contains("$__"))
    }

    /// What the database work found, checked on the test's own task (issues recorded on
    /// another thread are not attributed to the test).
    struct Outcome: Sendable {
        var setupStatuses: [Int32] = []
        var runOutput = ""
        var failures: [String] = []
        var rowsPerPanel: [String: Int] = [:]
        var kedaValue: Int64 = -1
    }

    @Test func everyDashboardAndKEDAQueryRuns() async throws {
        let targets = try Self.targets()
        let keda = try Self.kedaQuery()
        #expect(keda.contains("lethe.queue_summary"))
        let outcome = try await withMigratedDatabase { database in
            try await offThePool {
                var outcome = Outcome()
                let connection = try database.connect()
                defer { connection.close() }
                try ExampleApplication.load(on: connection, tenants: 2, scale: 80)
                let path = try ExampleApplication.configuration(url: database.url)
                defer { try? FileManager.default.removeItem(atPath: path) }
                outcome.setupStatuses.append(try LetheProcess.run(["policy", "sync", "--config", path]).status)
                outcome.setupStatuses.append(
                    try LetheProcess.run(["account", "add", "1", "2", "--config", path]).status)
                try connection.execute(
                    """
                    SELECT lethe.set_policy(a::text, t.name, t.min_interval)
                    FROM generate_series(1, 2) a, lethe.entity_types t WHERE t.deletes
                    """)
                let run = try LetheProcess.run(["run", "--until-idle", "--config", path])
                outcome.setupStatuses.append(run.status)
                outcome.runOutput = run.stderr
                // A dead task and a retrying one, so the failure panels have rows too.
                try connection.execute(
                    """
                    INSERT INTO lethe.tasks (kind, account_id, state, attempts, last_error, finished_at)
                    VALUES ('noop', 'dead-one', 'dead', 20, 'boom', now()),
                           ('noop', 'failing-one', 'failed', 1, 'boom', NULL)
                    """)

                let stamp = "YYYY-MM-DD\"T\"HH24:MI:SS\"Z\""
                let from: String = try connection.scalar(
                    "SELECT to_char((now() - interval '6 hours') AT TIME ZONE 'UTC', '\(stamp)')")
                let to: String = try connection.scalar(
                    "SELECT to_char((now() + interval '1 minute') AT TIME ZONE 'UTC', '\(stamp)')")
                for target in targets {
                    let sql = Self.expand(target.sql, from: from, to: to)
                    do {
                        outcome.rowsPerPanel[target.panel] = try connection.query(sql).count
                    } catch {
                        outcome.failures.append("panel \(target.panel): \(error)\n\(sql)")
                    }
                }
                do {
                    outcome.kedaValue = try connection.scalar(keda)
                } catch {
                    outcome.failures.append("the ScaledObject's query: \(error)\n\(keda)")
                }
                return outcome
            }
        }
        #expect(outcome.setupStatuses == [0, 0, 0], "\(outcome.runOutput)")
        #expect(outcome.failures == [])
        // The data above shows in the panels that read it.
        #expect(outcome.rowsPerPanel["Rows deleted"] ?? 0 > 0, "no deletions in the time range")
        #expect(outcome.rowsPerPanel["Task failures"] == 2)
        #expect(outcome.rowsPerPanel["Processes"] ?? 0 > 0)
        // KEDA reads one integer: due plus running tasks (the retrying task is due).
        #expect(outcome.kedaValue >= 1)
    }
}
