import Foundation
import LetheMetrics
import Logging
import Postgres
import Store
import TestSupport
import Testing

@testable import LetheCLI

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `/metrics`, `/healthz`, `/readyz` and JSON logs of a real `lethe run` against a real database.
@Suite struct ObservabilityTests {
    static let registry = """
        entity_types:
          conversations:
            table: app.conv
            account: account_id
            clock: ended_at
            interval: { default: 30d, min: 1d, max: 1y }
            batch_size: 5
            children:
              - table: app.msg
                parent: conv_id
        """

    func config(_ database: TestDatabase, extra: String = "") throws -> String {
        try writeConfig(
            """
            database: { url: "\(database.url)" }
            coordinator: { tick_interval: 200ms }
            worker: { poll_interval: 200ms, concurrency: 2 }
            \(extra)
            \(Self.registry)
            """)
    }

    /// GET `path` on `address`: the status and body.
    func get(_ address: String, _ path: String) async throws -> (Int, String) {
        let (data, response) = try await URLSession.shared.data(from: URL(string: "http://\(address)\(path)")!)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    /// The JSON objects of a log file (a line that does not parse fails the test).
    func jsonLines(_ log: URL) throws -> [[String: Any]] {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object != nil, "not a JSON object: \(line)")
            return object
        }
    }

    /// The sum of a metric's samples whose labels contain `labels` (e.g. `kind="retention"`).
    func sample(_ text: String, _ name: String, _ labels: String = "") -> Double {
        text.split(separator: "\n").filter { line in
            (line.hasPrefix(name + "{") || line.hasPrefix(name + " ")) && (labels.isEmpty || line.contains(labels))
        }
        .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
    }

    @Test func aRunExportsMetricsHealthAndJSONLogs() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(TestSchema.sql)
            let path = try config(database)
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(try LetheProcess.run(["policy", "sync", "--config", path]).status == 0)
            for account in ["1", "2"] {
                try connection.execute("SELECT lethe.add_account($1)", [account])
            }
            try connection.executeScript(
                """
                INSERT INTO app.conv (id, account_id, ended_at) SELECT g, 1 + g % 2, now() - interval '100 days'
                  FROM generate_series(1, 40) g;
                INSERT INTO app.msg SELECT g, g FROM generate_series(1, 40) g;
                """)

            let log = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-obs-\(UUID()).log")
            defer { try? FileManager.default.removeItem(at: log) }
            let process = try LetheProcess.launch(
                ["run", "--config", path, "--metrics-address", "127.0.0.1:0", "--log-format", "json"], log: log)
            defer { if process.isRunning { process.terminate() } }

            // The bound address is logged once the endpoint listens.
            var address: String?
            #expect(
                try await eventually(seconds: 120) {
                    address =
                        try jsonLines(log).first { ($0["message"] as? String)?.hasPrefix("serving /metrics") == true }?[
                            "address"] as? String
                    return address != nil || !process.isRunning
                })
            let bound = try #require(
                address, "no address line in \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")

            // Scrape until the work shows.
            var metrics = ""
            let deadline = ContinuousClock.now + .seconds(180)
            while ContinuousClock.now < deadline {
                metrics = try await get(bound, "/metrics").1
                if sample(metrics, "lethe_tasks_completed_total", "kind=\"retention\"") > 0,
                    sample(metrics, "lethe_rows_deleted_total", "entity_type=\"conversations\"") >= 80
                {
                    break
                }
                try await Task.sleep(for: .milliseconds(300))
            }
            #expect(sample(metrics, "lethe_tasks_claimed_total", "kind=\"retention\"") > 0, "\(metrics)")
            #expect(sample(metrics, "lethe_tasks_completed_total", "kind=\"retention\"") > 0, "\(metrics)")
            #expect(sample(metrics, "lethe_rows_deleted_total", "entity_type=\"conversations\"") == 80, "\(metrics)")
            #expect(sample(metrics, "lethe_claim_duration_seconds_count") > 0)
            #expect(sample(metrics, "lethe_task_duration_seconds_count", "kind=\"retention\"") > 0)
            #expect(sample(metrics, "lethe_batch_duration_seconds_count", "entity_type=\"conversations\"") > 0)
            #expect(metrics.contains("# HELP lethe_rows_deleted_total "))
            #expect(metrics.contains("# TYPE lethe_task_duration_seconds histogram"))
            #expect(!metrics.contains("account"), "no account label: \(metrics)")
            #expect(
                try await eventually(seconds: 60) {
                    let text = try await get(bound, "/metrics").1
                    return sample(text, "lethe_leader") == 1 && text.contains("lethe_queue_tasks{")
                })

            // promtool accepts the exposition.
            metrics = try await get(bound, "/metrics").1
            let exposition = metrics
            let promtool = try await offThePool {
                try runTool("/usr/bin/promtool", ["check", "metrics"], input: exposition)
            }
            #expect(promtool.status == 0, "promtool: \(promtool.output)\n\(metrics)")

            // Health and readiness.
            let health = try await get(bound, "/healthz")
            #expect(health.0 == 200 && health.1 == "ok\n")
            let ready = try await get(bound, "/readyz")
            #expect(ready.0 == 200 && ready.1 == "ready\n", "\(ready)")
            #expect(try await get(bound, "/nothing").0 == 404)
            // A second process on the same port exits 1 naming it, before doing any work.
            let taken = try await offThePool {
                try LetheProcess.run(["worker", "--config", path, "--metrics-address", bound])
            }
            #expect(taken.status == 1 && taken.stderr.contains("cannot serve metrics on \(bound)"), "\(taken.output)")

            try connection.execute(
                "DELETE FROM lethe.schema_migrations WHERE version = (SELECT max(version) FROM lethe.schema_migrations)"
            )
            let unready = try await get(bound, "/readyz")
            #expect(unready.0 == 503 && unready.1.contains("run `lethe migrate`"), "\(unready)")

            process.terminate()
            let status = try await offThePool {
                process.waitUntilExit()
                return process.terminationStatus
            }
            #expect(status == 0)

            // Every line is JSON with the fixed keys; each finished task has its notice line.
            let lines = try jsonLines(log)
            for line in lines {
                #expect(line["ts"] is String && line["level"] is String && line["message"] is String, "\(line)")
            }
            let finished = lines.filter { $0["message"] as? String == "task succeeded" }
            #expect(!finished.isEmpty)
            for line in finished {
                #expect(line["level"] as? String == "notice")
                #expect(line["task_kind"] != nil && line["task"] != nil && line["outcome"] as? String == "succeeded")
                #expect(line["duration_ms"] is NSNumber, "\(line)")
            }
            let retention = finished.filter { $0["task_kind"] as? String == "retention" }
            #expect(retention.contains { $0["account"] != nil && $0["entity_type"] as? String == "conversations" })
            let rows = retention.compactMap { ($0["rows"] as? NSNumber)?.intValue }.reduce(0, +)
            #expect(rows == 80, "\(retention)")
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            if let password = URLComponents(string: database.url)?.password, !password.isEmpty {
                #expect(!text.contains(password))
            }
        }
    }

    @Test func badAddressesAndFormatsExitTwoNamingTheValue() throws {
        for (arguments, words) in [
            (["run", "--metrics-address", "localhost"], ["\"localhost\"", "HOST:PORT"]),
            (["worker", "--metrics-address", "1.2.3:80"], ["\"1.2.3:80\"", "HOST:PORT"]),
            (["coordinator", "--metrics-address", "127.0.0.1:70000"], ["\"127.0.0.1:70000\""]),
            (["status", "--log-format", "xml"], ["\"xml\"", "text, json"]),
        ] {
            let result = try LetheProcess.run(arguments + ["--database-url", "postgresql://127.0.0.1:1/none"])
            #expect(result.status == 2, "\(arguments): \(result.output)")
            for word in words { #expect(result.stderr.contains(word), "\(arguments): \(result.stderr)") }
        }
        for (yaml, words) in [
            ("log: { format: xml }", ["log.format", "\"xml\"", "text, json"]),
            ("metrics: { address: \"9464\" }", ["metrics.address", "\"9464\"", "HOST:PORT"]),
        ] {
            let path = try writeConfig(yaml)
            defer { try? FileManager.default.removeItem(atPath: path) }
            let result = try LetheProcess.run(["run", "--config", path, "--database-url", "postgresql://127.0.0.1:1/x"])
            #expect(result.status == 2, "\(yaml): \(result.output)")
            for word in words { #expect(result.stderr.contains(word), "\(yaml): \(result.stderr)") }
        }
    }

    @Test func addressesParse() throws {
        #expect(try MetricsAddress(parsing: "0.0.0.0:9464", source: "x").description == "0.0.0.0:9464")
        #expect(try MetricsAddress(parsing: "localhost:0", source: "x").description == "127.0.0.1:0")
        #expect(try MetricsAddress(parsing: "[::1]:9464", source: "x").host == .ip6("::1"))
        for bad in ["", ":80", "host:80", "1.2.3.4", "1.2.3.4:", "1.2.3.256:1", "[]:1", "[zz]:1", "1.2.3.4:-1"] {
            #expect(throws: (any Error).self, "\(bad)") { try MetricsAddress(parsing: bad, source: "x") }
        }
    }

    @Test func readinessNamesWhatIsMissing() async throws {
        let known = try MigrationFile.embedded()
        try await TestDatabase.with { database in
            let connection = try database.connect()
            defer { connection.close() }
            let problems = try HealthChecks.readiness(known: known, on: connection)
            #expect(problems.count == 1 && problems[0].contains("not migrated"), "\(problems)")
        }
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            let problems = try HealthChecks.readiness(known: known, on: connection)
            #expect(problems == [HealthChecks.unsynced], "\(problems)")
            let newest = try #require(known.map(\.version).max())
            try connection.execute("DELETE FROM lethe.schema_migrations WHERE version = $1", [newest])
            let behind = try HealthChecks.readiness(known: known, on: connection)
            #expect(behind.first?.contains("this binary needs version \(newest)") == true, "\(behind)")
            #expect(behind.contains(HealthChecks.unsynced), "\(behind)")
        }
    }

    @Test func jsonLinesEscapeAndKeepNumbers() throws {
        let line = JSONLogHandler.line(
            level: .notice, message: "a \"quoted\"\nline", label: "lethe.run",
            metadata: ["lethe.rows": "12", "lethe.account": "007", "lethe.task": "3", "ts": "spoof"],
            date: Date(timeIntervalSince1970: 0))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["message"] as? String == "a \"quoted\"\nline")
        #expect(object["rows"] as? Int == 12 && object["account"] as? String == "007")
        #expect(object["ts"] as? String == "1970-01-01T00:00:00.000Z" && object["level"] as? String == "notice")
    }

    @Test func docsListEveryMetric() throws {
        let docs = try String(
            contentsOf: Repository.root().appendingPathComponent("docs/metrics.md"), encoding: .utf8)
        for metric in LetheMetric.all {
            #expect(docs.contains("`\(metric.name)`"), "docs/metrics.md does not list \(metric.name)")
        }
    }
}

/// Polls an async condition every 200 ms for up to `seconds`.
func eventually(seconds: Int, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(200))
    }
    return try await condition()
}

/// Runs a program with `input` on standard input.
func runTool(_ path: String, _ arguments: [String], input: String) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let (stdin, out) = (Pipe(), Pipe())
    process.standardInput = stdin
    process.standardOutput = out
    process.standardError = out
    try process.run()
    stdin.fileHandleForWriting.write(Data(input.utf8))
    try stdin.fileHandleForWriting.close()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
