import Foundation
import Logging
import Postgres
import Retention
import TestSupport
import Testing

@testable import Store
@testable import Worker

/// The throttle against a real server: a transaction an application leaves open pauses
/// retention batches with the reason, and they resume once it ends; a fake lag source.
@Suite struct ThrottleStoreTests {
    static func settings(_ change: (inout ThrottleSettings) -> Void) -> ThrottleSettings {
        var settings = ThrottleSettings()
        settings.checkInterval = .milliseconds(200)
        change(&settings)
        return settings
    }

    /// Runs one retention task slice of `budget` for account 1 on a slot of its own.
    static func slice(
        _ handler: RetentionHandler, url: String, budget: Duration
    ) async throws -> (TaskProgress, TaskCounts) {
        let slots = SlotDatabases(conninfo: url)
        let task = ClaimedTask(
            id: 1, kind: .retention, accountID: "1", entityType: "conversations", attempt: 1, maxAttempts: 5,
            yields: 0, payload: "{}", claim: 1)
        let context = TaskContext(
            task: task, logger: Logger(label: "test"), workerID: UUID(), deadline: .now + budget, slot: 0,
            slots: slots)
        do {
            let progress = try await handler.run(task, context: context)
            await slots.shutdown()
            return (progress, context.counts)
        } catch {
            await slots.shutdown()
            throw error
        }
    }

    @Test func aLongTransactionPausesBatchesWithTheReasonAndTheyResumeAfterItEnds() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            let registry = try Fixture.prepare(connection, registry: Fixture.registry(batchSize: 2))
            try connection.execute("SELECT lethe.add_account('1')")
            for id in 1...5 { try Fixture.conversation(connection, id: Int64(id), account: 1, endedDaysAgo: 40) }

            // An application's session holding a transaction (an xid) open.
            let application = try Connection.connect(database.url, applicationName: "application")
            defer { application.close() }
            try application.execute("BEGIN")
            _ = try application.query("SELECT txid_current()")
            let url = database.url
            let old = try await offThePool {
                let watcher = try Connection.connect(url)
                defer { watcher.close() }
                return try eventually(timeout: .seconds(60)) {
                    try watcher.scalar(
                        """
                        SELECT count(*) FROM pg_stat_activity WHERE application_name = 'application'
                            AND datname = current_database()
                            AND clock_timestamp() - xact_start > interval '1.5 seconds'
                        """, as: Int.self) == 1
                }
            }
            #expect(old)

            let monitor = HealthMonitor(
                settings: Self.settings { $0.limits.transactionAge = .seconds(1) }, logger: Logger(label: "test"))
            let handler = RetentionHandler(
                registry: registry, maxBatches: 100, monitor: monitor, sizer: BatchSizer(target: nil))
            let (paused, pausedCounts) = try await Self.slice(handler, url: database.url, budget: .seconds(1))
            #expect(paused == .more)  // yielded at the end of its budget without a batch
            #expect(pausedCounts.rowsDeleted == 0)
            #expect(monitor.reasons == [.transactionAge])
            #expect(try connection.scalar("SELECT count(*) FROM app.conv", as: Int.self) == 5)
            let cause = try await offThePool { () -> [ThrottleCause] in
                let own = try database.connect()
                defer { own.close() }
                return try monitor.causes(for: registry.entityTypes["conversations"]!, on: own)
            }
            #expect(cause.first?.description.hasPrefix("the oldest transaction has run ") == true)

            try application.execute("ROLLBACK")
            let (resumed, counts) = try await Self.slice(handler, url: database.url, budget: .seconds(600))
            #expect(resumed == .done)
            #expect(counts.rowsDeleted == 5 * 5)  // conversations, their two messages and two attachments
            #expect(try connection.scalar("SELECT count(*) FROM app.conv", as: Int.self) == 0)
            #expect(monitor.reasons.isEmpty)
        }
    }

    @Test func aFloorRateSlowsBatchesInsteadOfPausingAndPacesTheWholeProcess() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            let registry = try Fixture.prepare(connection, registry: Fixture.registry(batchSize: 50))
            try connection.execute("SELECT lethe.add_account('1')")
            for id in 1...5 { try Fixture.conversation(connection, id: Int64(id), account: 1, endedDaysAgo: 40) }
            try connection.execute("CREATE TABLE public.fake_lag (seconds float8)")
            try connection.execute("INSERT INTO public.fake_lag VALUES (45)")
            let monitor = HealthMonitor(
                settings: Self.settings {
                    $0.lagQuery = "SELECT seconds FROM public.fake_lag"
                    $0.floorRate = 2
                }, logger: Logger(label: "test"))
            let sizer = BatchSizer(target: .milliseconds(150))
            let handler = RetentionHandler(registry: registry, maxBatches: 100, monitor: monitor, sizer: sizer)
            // Throttled: batches of at most 2 roots (the floor's second), not 50, and they run.
            let (progress, counts) = try await Self.slice(handler, url: database.url, budget: .seconds(600))
            #expect(progress == .done)
            #expect(counts.rowsDeleted == 5 * 5)
            #expect(monitor.reasons == [.replicationLag])
            let batches = try connection.query(
                "SELECT root_rows FROM lethe.deletion_log ORDER BY root_rows"
            ).map { try $0.decode(Int.self, at: 0) }
            #expect(batches == [1, 2, 2], "\(batches)")
            // Throttled batches teach the adaptive size nothing.
            #expect(sizer.size(account: "1", type: registry.entityTypes["conversations"]!.type) == 5)

            // Reservations of every slot follow one clock: a second's worth of the floor each.
            let first = monitor.reserveFloor(upTo: 100)
            let second = monitor.reserveFloor(upTo: 1)
            let third = monitor.reserveFloor(upTo: 100)
            #expect(first.rows == 2 && second.rows == 1 && third.rows == 2)
            #expect(second.start >= first.start + .seconds(1))
            #expect(third.start >= second.start + .milliseconds(500))
        }
    }

    @Test func aPairSeenForTheFirstTimeStartsWhereItsTypeLastSettled() {
        let type = Fixture.registry(batchSize: 1000).entityTypes.first { $0.name == "conversations" }!
        let sizer = BatchSizer(target: .milliseconds(150))
        // Nothing learned yet: the floor, a tenth of batch_size.
        #expect(sizer.size(account: "1", type: type) == 100)
        for _ in 0..<5 {
            sizer.record(
                account: "1", type: type, rows: sizer.size(account: "1", type: type), duration: .milliseconds(10))
        }
        let learned = sizer.size(account: "1", type: type)
        #expect(learned > 100)
        // Another account of the same type starts there, not at the floor; a type without
        // batch_size adaptation (no target) keeps batch_size.
        #expect(sizer.size(account: "2", type: type) == learned)
        #expect(BatchSizer(target: nil).size(account: "2", type: type) == 1000)
    }

    @Test func theThrottleStateIsRecordedForStatusAndClearedWhenItLiftsOrTheWorkerStops() async throws {
        try await withMigratedDatabase { database in
            try await offThePool {
                let connection = try database.connect()
                defer { connection.close() }
                let registry = try Fixture.prepare(connection)
                let type = registry.entityTypes["conversations"]!
                try connection.execute("CREATE TABLE public.fake_lag (seconds float8)")
                try connection.execute("INSERT INTO public.fake_lag VALUES (45)")
                let monitor = HealthMonitor(
                    settings: Self.settings {
                        $0.lagQuery = "SELECT seconds FROM public.fake_lag"
                        $0.checkInterval = .zero
                    }, logger: Logger(label: "test"))
                let processes = ProcessRegistry()
                let worker = ProcessRegistry.Registration(role: "worker", slots: 2, lease: .seconds(60), version: "t")
                try processes.register(worker, on: connection)
                #expect(monitor.publication() == nil)  // nothing changed yet

                func record() throws {
                    let publication = try #require(monitor.publication())
                    try processes.recordThrottle(
                        worker.id, reasons: publication.reasons, throttledFor: publication.throttledFor,
                        detail: publication.detail, on: connection)
                    monitor.published(publication)
                    #expect(monitor.publication() == nil)
                }
                _ = try monitor.causes(for: type, on: connection)
                try record()
                let row = try connection.query(
                    "SELECT id, reasons, since <= now(), throttled_for >= interval '0', detail FROM lethe.throttled_workers"
                )
                #expect(row.count == 1)
                #expect(try row[0].decode(UUID.self, at: 0) == worker.id)
                #expect(try row[0].decode([String].self, at: 1) == ["replication_lag"])
                #expect(try row[0].decode(Bool.self, at: 2))
                #expect(
                    try row[0].decode(String.self, at: 4)
                        == "replication lag 45 s is over throttle.max_replication_lag 30 s")
                let since: Date = try connection.scalar("SELECT throttled_since FROM lethe.workers")
                // New figures, the same throttle: the detail follows, the start stays.
                try connection.execute("UPDATE fake_lag SET seconds = 50")
                _ = try monitor.causes(for: type, on: connection)
                try record()
                #expect(
                    try connection.scalar("SELECT detail FROM lethe.throttled_workers", as: String.self).contains(
                        "50 s"))
                #expect(try connection.scalar("SELECT throttled_since FROM lethe.workers", as: Date.self) == since)
                #expect(
                    try connection.scalar("SELECT throttled_reasons FROM lethe.worker_status", as: [String].self)
                        == ["replication_lag"])

                // The lag goes: cleared.
                try connection.execute("UPDATE fake_lag SET seconds = 1")
                _ = try monitor.causes(for: type, on: connection)
                try record()
                #expect(try connection.scalar("SELECT count(*) FROM lethe.throttled_workers", as: Int.self) == 0)
                #expect(
                    try connection.scalar(
                        """
                        SELECT count(*) FROM lethe.workers
                        WHERE throttled_reasons = '{}' AND throttled_since IS NULL AND throttle_detail IS NULL
                        """, as: Int.self) == 1)

                // A stopped worker throttles nothing, whatever it last said.
                try connection.execute("UPDATE fake_lag SET seconds = 45")
                _ = try monitor.causes(for: type, on: connection)
                try record()
                #expect(try connection.scalar("SELECT count(*) FROM lethe.throttled_workers", as: Int.self) == 1)
                let report = try StatusReport.read(on: connection)
                #expect(report.processes.first?.throttledReasons == ["replication_lag"])
                #expect(report.processes.first?.throttleDetail?.hasPrefix("replication lag 45 s") == true)
                try processes.markStopped(worker.id, on: connection)
                #expect(try connection.scalar("SELECT count(*) FROM lethe.throttled_workers", as: Int.self) == 0)
                #expect(
                    try connection.scalar("SELECT cardinality(throttled_reasons) FROM lethe.workers", as: Int.self) == 0
                )
            }
        }
    }

    @Test func aFakeLagSourceThrottlesOverTheLimitAndBadLagQueriesAreRefused() async throws {
        try await withMigratedDatabase { database in
            try await offThePool {
                let connection = try database.connect()
                defer { connection.close() }
                let registry = try Fixture.prepare(connection)
                let type = registry.entityTypes["conversations"]!
                try connection.execute("CREATE TABLE public.fake_lag (seconds float8)")
                try connection.execute("INSERT INTO public.fake_lag VALUES (45)")
                let monitor = HealthMonitor(
                    settings: Self.settings {
                        $0.lagQuery = "SELECT seconds FROM public.fake_lag"
                        $0.checkInterval = .zero  // every call samples
                    }, logger: Logger(label: "test"))
                let lagging = try monitor.causes(for: type, on: connection)
                #expect(lagging.map(\.reason) == [.replicationLag])
                #expect(lagging.first?.description == "replication lag 45 s is over throttle.max_replication_lag 30 s")
                #expect(monitor.reasons == [.replicationLag])
                try connection.execute("UPDATE fake_lag SET seconds = 3")
                #expect(try monitor.causes(for: type, on: connection).isEmpty)
                #expect(monitor.reasons.isEmpty)
                // No replica: NULL, or no row, never throttles.
                try connection.execute("UPDATE fake_lag SET seconds = NULL")
                #expect(try monitor.causes(for: type, on: connection).isEmpty)
                try DatabaseHealth.checkLagQuery(DatabaseHealth.standardLagQuery, on: connection)

                #expect(throws: LagQueryShape.self) {
                    try DatabaseHealth.checkLagQuery("SELECT 1, 2", on: connection)
                }
                #expect(throws: LagQueryShape.self) {
                    try DatabaseHealth.checkLagQuery("SELECT 'soon'", on: connection)
                }
                #expect(throws: LagQueryShape.self) {
                    try DatabaseHealth.checkLagQuery("SELECT generate_series(1, 2)", on: connection)
                }
                // One statement only, and nothing written.
                #expect(throws: PostgresError.self) {
                    try DatabaseHealth.checkLagQuery("SELECT 1; DELETE FROM public.fake_lag", on: connection)
                }
                #expect(throws: PostgresError.self) {
                    try DatabaseHealth.checkLagQuery("DELETE FROM public.fake_lag RETURNING 1", on: connection)
                }
                #expect(try connection.scalar("SELECT count(*) FROM public.fake_lag", as: Int.self) == 1)
            }
        }
    }

    /// A lag query is the operator's SQL, run every few seconds on a worker's connection
    /// (through PgBouncer, a server connection other clients share). Whatever it changes in
    /// the session (`set_config(…, false)` outlives a committed transaction) must end with
    /// the sample, and an infinite lag throttles without crashing the worker.
    @Test func aLagQueryLeavesNoSessionStateAndAnInfiniteLagThrottles() async throws {
        try await withMigratedDatabase { database in
            try await offThePool {
                let connection = try database.connect()
                defer { connection.close() }
                let registry = try Fixture.prepare(connection)
                let type = registry.entityTypes["conversations"]!
                let before: String = try connection.scalar("SELECT current_setting('search_path')")
                for query in [
                    "SELECT length(set_config('search_path', 'nowhere', false))",
                    "SELECT length(set_config('default_transaction_read_only', 'on', false))",
                ] {
                    try DatabaseHealth.checkLagQuery(query, on: connection)
                    _ = try DatabaseHealth.sample(lagQuery: query, type: type, on: connection)
                }
                #expect(try connection.scalar("SELECT current_setting('search_path')", as: String.self) == before)
                #expect(
                    try connection.scalar("SELECT current_setting('default_transaction_read_only')", as: String.self)
                        == "off")
                #expect(!connection.isInTransaction)

                let monitor = HealthMonitor(
                    settings: Self.settings {
                        $0.lagQuery = "SELECT 'Infinity'::float8"
                        $0.checkInterval = .zero
                    }, logger: Logger(label: "test"))
                #expect(try monitor.causes(for: type, on: connection).map(\.reason) == [.replicationLag])
            }
        }
    }

    @Test func lockWaitsOnTheTypesTablesThrottleIt() async throws {
        try await withMigratedDatabase { database in
            let url = database.url
            try await offThePool {
                let connection = try database.connect()
                defer { connection.close() }
                let registry = try Fixture.prepare(connection)
                let holder = try Connection.connect(url, applicationName: "application")
                defer { holder.close() }
                try holder.execute("BEGIN")
                try holder.execute("LOCK TABLE app.msg IN ACCESS EXCLUSIVE MODE")
                // A second application session queues behind it (its statement blocks: a thread of its own).
                let waiting = Thread {
                    guard let waiter = try? Connection.connect(url, applicationName: "application") else { return }
                    _ = try? waiter.query("SELECT count(*) FROM app.msg")
                    waiter.close()
                }
                waiting.start()
                let monitor = HealthMonitor(
                    settings: Self.settings { $0.checkInterval = .zero }, logger: Logger(label: "test"))
                let type = registry.entityTypes["conversations"]!
                let queued = try eventually(timeout: .seconds(60)) {
                    try monitor.causes(for: type, on: connection).map(\.reason) == [.lockWaits]
                }
                #expect(queued)
                #expect(monitor.reasons == [.lockWaits])
                // Another type's tables are not waited on.
                #expect(try monitor.causes(for: registry.entityTypes["documents"]!, on: connection).isEmpty)
                try holder.execute("COMMIT")
                let cleared = try eventually(timeout: .seconds(60)) {
                    try monitor.causes(for: type, on: connection).isEmpty
                }
                #expect(cleared)
            }
        }
    }
}
