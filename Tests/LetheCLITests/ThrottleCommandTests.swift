import Foundation
import Postgres
import TestSupport
import Testing

/// The throttle end to end: a real `lethe worker` (and coordinator) against a database where
/// the test holds a transaction open, as an application would; `lethe status` says why.
@Suite struct ThrottleCommandTests {
    /// A configuration with quick heartbeats and the throttle on transaction age at 1s.
    static func configuration(_ database: TestDatabase, throttle: String) throws -> String {
        try writeConfig(
            """
            database: { url: "\(database.url)" }
            coordinator: { tick_interval: 200ms }
            worker: { poll_interval: 200ms, concurrency: 4, heartbeat_interval: 300ms }
            retention: { max_batches: 100000, target_batch_duration: 0 }
            throttle: { max_transaction_age: 1s, \(throttle) }
            \(RegistryConfigurationTests.good)
            """)
    }

    /// `conversations` expired conversations per account 1 and 2 (two messages each), and 10
    /// recent ones per account that stay; policies synced and accounts added.
    static func prepare(_ connection: Connection, config: String, conversations: Int) throws {
        try connection.executeScript(TestSchema.sql)
        #expect(try LetheProcess.run(["policy", "sync", "--config", config]).status == 0)
        #expect(try LetheProcess.run(["account", "add", "1", "2", "--config", config]).status == 0)
        let expired = conversations * 2
        try connection.execute(
            """
            INSERT INTO app.conv (id, account_id, ended_at)
            SELECT g, 1 + g % 2, now() - CASE WHEN g <= $1 THEN 40 ELSE 2 END * interval '1 day'
            FROM generate_series(1, $1 + 20) g
            """, [expired])
        try connection.execute(
            "INSERT INTO app.msg (id, conv_id) SELECT g * 2 - m, g FROM generate_series(1, $1 + 20) g, generate_series(0, 1) m",
            [expired])
    }

    /// An application's session holding a transaction (an xid) open, returned once it is
    /// older than the 1s limit, so the worker's first sample already sees it.
    static func holdTransaction(_ database: TestDatabase, watcher: Connection) throws -> Connection {
        let application = try Connection.connect(database.url, applicationName: "application")
        try application.execute("BEGIN")
        _ = try application.query("SELECT txid_current()")
        let old = try eventually(timeout: .seconds(60)) {
            try watcher.scalar(
                """
                SELECT count(*) FROM pg_stat_activity WHERE application_name = 'application'
                    AND datname = current_database()
                    AND clock_timestamp() - xact_start > interval '1.5 seconds'
                """, as: Int.self) == 1
        }
        #expect(old)
        return application
    }

    /// A log's text, for failure messages.
    static func text(_ log: URL) -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    @Test func aHeldTransactionPausesTheWorkerAndStatusSaysWhyUntilItEnds() async throws {
        try await withMigratedDatabase { database in
            try await offThePool {
                let connection = try database.connect()
                defer { connection.close() }
                let config = try Self.configuration(database, throttle: "check_interval: 500ms")
                defer { try? FileManager.default.removeItem(atPath: config) }
                try Self.prepare(connection, config: config, conversations: 100)
                let application = try Self.holdTransaction(database, watcher: connection)
                defer { application.close() }

                let logs = FileManager.default.temporaryDirectory.appendingPathComponent(
                    "lethe-thr-\(UUID().uuidString)")
                try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(at: logs) }
                let workerLog = logs.appendingPathComponent("worker.log")
                let processes = [
                    try LetheProcess.launch(
                        ["coordinator", "--config", config], log: logs.appendingPathComponent("c.log")),
                    try LetheProcess.launch(["worker", "--config", config], log: workerLog),
                ]
                defer {
                    for process in processes where process.isRunning { process.terminate() }
                    for process in processes { process.waitUntilExit() }
                }
                func count(_ sql: String) throws -> Int { try connection.scalar(sql) }
                let throttled = try eventually(timeout: .seconds(120)) {
                    try count(
                        "SELECT count(*) FROM lethe.throttled_workers WHERE reasons = '{transaction_age}' AND since IS NOT NULL"
                    ) == 1
                }
                #expect(throttled, "\(Self.text(workerLog))")
                // Retention tasks are running (paused), and nothing was deleted.
                let running = try eventually(timeout: .seconds(60)) {
                    try count("SELECT count(*) FROM lethe.tasks WHERE kind = 'retention' AND state = 'running'") > 0
                }
                #expect(running)

                let status = try LetheProcess.run(["status", "--config", config])
                #expect(status.status == 0, "\(status.output)")
                #expect(status.output.contains("THROTTLED"), "\(status.output)")
                #expect(status.output.contains("transaction_age for "), "\(status.output)")
                #expect(
                    status.output.contains("throttles retention: the oldest transaction has run "), "\(status.output)")
                let json = try LetheProcess.run(["status", "--json", "--config", config])
                #expect(json.output.contains("\"throttled_reasons\""), "\(json.output)")
                #expect(json.output.contains("\"transaction_age\""), "\(json.output)")
                // A throttle is not a problem for --check.
                let check = try LetheProcess.run(["status", "--check", "--config", config])
                #expect(!check.output.contains("transaction_age"), "\(check.output)")
                #expect(try count("SELECT count(*) FROM app.conv") == 220)
                #expect(try count("SELECT count(*) FROM lethe.deletion_records") == 0)
                #expect(try count("SELECT count(*) FROM lethe.workers WHERE throttle_detail LIKE 'the oldest %'") == 1)

                // The application commits: the worker resumes, deletes the rest and clears it.
                try application.execute("COMMIT")
                let resumed = try eventually(timeout: .seconds(120)) {
                    try count("SELECT count(*) FROM app.conv") == 20
                        && count("SELECT count(*) FROM lethe.throttled_workers") == 0
                        && count(
                            """
                            SELECT count(*) FROM lethe.workers WHERE role = 'worker' AND throttled_reasons = '{}'
                                AND throttled_since IS NULL AND throttle_detail IS NULL
                            """) == 1
                }
                #expect(resumed, "\(Self.text(workerLog))")
                #expect(try count("SELECT count(*) FROM app.conv WHERE ended_at > now() - interval '3 days'") == 20)
                let after = try LetheProcess.run(["status", "--config", config])
                #expect(!after.output.contains("transaction_age"), "\(after.output)")
                let log = try String(contentsOf: workerLog, encoding: .utf8)
                #expect(log.contains("retention throttled"), "\(log)")
                #expect(log.contains("retention throttle lifted"), "\(log)")
            }
        }
    }

    @Test func aFloorRateBoundsDeletionsWhileThrottled() async throws {
        try await withMigratedDatabase { database in
            try await offThePool {
                let connection = try database.connect()
                defer { connection.close() }
                // A sample an hour old is still good: the throttle holds for the whole test.
                let floor = 20
                let config = try Self.configuration(database, throttle: "check_interval: 1h, floor_rate: \(floor)")
                defer { try? FileManager.default.removeItem(atPath: config) }
                try Self.prepare(connection, config: config, conversations: 1000)
                let application = try Self.holdTransaction(database, watcher: connection)
                defer { application.close() }

                let logs = FileManager.default.temporaryDirectory.appendingPathComponent(
                    "lethe-flr-\(UUID().uuidString)")
                try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(at: logs) }
                let workerLog = logs.appendingPathComponent("worker.log")
                let launched = ContinuousClock.now
                let processes = [
                    try LetheProcess.launch(
                        ["coordinator", "--config", config], log: logs.appendingPathComponent("c.log")),
                    try LetheProcess.launch(["worker", "--config", config], log: workerLog),
                ]
                defer {
                    for process in processes where process.isRunning { process.terminate() }
                    for process in processes { process.waitUntilExit() }
                }
                func deleted() throws -> Int {
                    try connection.scalar("SELECT coalesce(sum(root_rows), 0)::int FROM lethe.deletion_log")
                }
                // Slowed, not paused: batches run, both accounts' tasks sharing the process's floor.
                let started = try eventually(timeout: .seconds(120)) {
                    try deleted() > 0
                        && connection.scalar("SELECT count(*) FROM lethe.throttled_workers", as: Int.self) == 1
                }
                #expect(started, "\(Self.text(workerLog))")
                Thread.sleep(forTimeInterval: 5)
                let count = try deleted()
                let elapsed = Double((ContinuousClock.now - launched).components.seconds) + 1
                // At most the floor over the whole time since launch, plus a batch; the 2,000
                // expired roots would be gone within seconds at full speed.
                #expect(count > 0)
                #expect(Double(count) <= Double(floor) * (elapsed + 2), "\(count) roots in \(elapsed) s")
                #expect(try connection.scalar("SELECT count(*) FROM app.conv", as: Int.self) > 20)
                let batches: Int = try connection.scalar(
                    "SELECT count(*) FROM lethe.deletion_log WHERE root_rows > $1", [floor])
                #expect(batches == 0)
                #expect(
                    try connection.scalar(
                        "SELECT reasons FROM lethe.throttled_workers", as: [String].self) == ["transaction_age"])
                try application.execute("ROLLBACK")
            }
        }
    }
}
