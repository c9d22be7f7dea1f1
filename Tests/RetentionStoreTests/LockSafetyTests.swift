import Foundation
import Postgres
import Retention
import Store
import TestSupport
import Testing

/// Two sessions at once: a hold committed while a deleting batch waits for the account
/// lock stops that batch, and a batch stuck behind an application's lock gives up.
@Suite struct LockSafetyTests {
    /// What a batch on the other session did.
    enum Outcome: Sendable, Equatable {
        case finished(RetentionBatchResult.Status)
        case failed(sqlState: String?)
        case blocked(String)
        case collected(Int)
    }

    /// Polls (without blocking the cooperative pool) until backend `pid` waits for a lock.
    /// Timeouts long enough that a batch waiting for the account lock is still waiting when
    /// a loaded suite gets round to looking (the standard 5 s lock timeout could end the wait
    /// before the test saw it, and the batch would fail instead of seeing the hold).
    static let patient = DeletionTimeouts(lock: .seconds(600), statement: .seconds(600))

    func waitsForLock(_ database: TestDatabase, pid: Int32, within limit: Duration = .seconds(120)) async throws -> Bool
    {
        let observer = try database.connect()
        defer { observer.close() }
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            let waiting: Bool = try observer.scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)", [pid])
            if waiting { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// Runs `body` on `thread`; if it has not finished after `limit`, cancels its statement
    /// (so a regression fails the test instead of hanging it). Generous: the whole suite in
    /// parallel can delay a thread's work by many seconds.
    func withWatchdog(
        _ database: TestDatabase, thread: ConnectionThread, pid: Int32, limit: Duration = .seconds(180),
        _ body: @escaping @Sendable (Connection) throws -> Outcome
    ) async throws -> Outcome {
        try await withThrowingTaskGroup(of: Outcome?.self) { group in
            group.addTask {
                try await thread.run { connection in
                    do {
                        return try body(connection)
                    } catch let error as PostgresError {
                        return .failed(sqlState: error.sqlState?.rawValue)
                    }
                }
            }
            group.addTask {
                try await Task.sleep(for: limit)
                let canceller = try database.connect()
                defer { canceller.close() }
                try canceller.execute("SELECT pg_cancel_backend($1)", [pid])
                return nil
            }
            var outcome: Outcome?
            while outcome == nil, let next = try await group.next() { outcome = next }
            group.cancelAll()
            return outcome!
        }
    }

    /// A hold placed by `place_hold`, or written directly into `lethe.holds` (as the schema's
    /// owner may: a trigger locks the account as the function does), while a batch waits.
    @Test(arguments: [
        ("SELECT lethe.place_hold('5', NULL, 'race test', NULL)", "race test"),
        ("INSERT INTO lethe.holds (account_id, reason) VALUES ('5', 'direct')", "direct"),
    ])
    func aHoldCommittedWhileABatchWaitsStopsThatBatch(hold: String, reason: String) async throws {
        try await withMigratedDatabase { database in
            let session = try database.connect()
            defer { session.close() }
            let registry = try Fixture.prepare(session)
            try session.execute("SELECT lethe.add_account('5')")
            for id in 1...4 { try Fixture.conversation(session, id: Int64(id), account: 5, endedDaysAgo: 40) }
            let batch = RetentionBatch(
                type: registry.entityTypes["conversations"]!, registry: registry, timeouts: Self.patient)
            let thread = ConnectionThread(conninfo: database.url, name: "batch")
            let pid: Int32 = try await thread.run { try $0.scalar("SELECT pg_backend_pid()") }

            // Session A places a hold and has not committed yet.
            try session.execute("BEGIN")
            try session.execute(hold)
            // Session B's batch starts now and must wait for A.
            async let outcome = withWatchdog(database, thread: thread, pid: pid) { connection in
                .finished(try batch.run(account: "5", task: nil, worker: nil, on: connection).status)
            }
            #expect(try await waitsForLock(database, pid: pid), "the batch did not wait for the account lock")
            try session.execute("COMMIT")
            #expect(try await outcome == .finished(.held(reason)))
            await thread.shutdown()
            #expect(try session.scalar("SELECT count(*) FROM app.conv", as: Int.self) == 4)
            #expect(try session.scalar("SELECT count(*) FROM app.msg", as: Int.self) == 8)
            #expect(try session.scalar("SELECT count(*) FROM lethe.deletion_records", as: Int.self) == 0)
        }
    }

    @Test func everyFunctionThatChangesWhatMayGoWaitsForABatchInFlight() async throws {
        try await withMigratedDatabase { database in
            let setup = try database.connect()
            defer { setup.close() }
            try Fixture.prepare(setup)
            try setup.execute("SELECT lethe.define_tier('gold')")
            try setup.execute("SELECT lethe.add_account('1'), lethe.add_account('2', 'gold')")
            let hold: Int64 = try setup.scalar("SELECT lethe.place_hold('1', 'documents', 'audit')")
            // A batch in flight on both accounts: the FOR SHARE lock it takes first.
            let batch = try database.connect()
            defer { batch.close() }
            try batch.execute("BEGIN")
            try batch.execute("SELECT 1 FROM lethe.accounts WHERE account_id IN ('1', '2') FOR SHARE")
            try setup.execute("SET lock_timeout = '100ms'")
            for call in [
                "SELECT lethe.set_policy('1', 'conversations', '60 days')",
                "SELECT lethe.set_policy_enabled('1', 'conversations', false)",
                "SELECT lethe.operator_set_policy_disabled('1', 'conversations', true, 'review')",
                "SELECT lethe.operator_set_retention_disabled('1', true, 'unpaid')",
                "SELECT lethe.set_account_state('1', 'suspended')",
                "SELECT lethe.place_hold('1', NULL, 'litigation')",
                "SELECT lethe.release_hold(\(hold))",
                "SELECT lethe.assign_tier('gold', ARRAY['1'])",
                "SELECT lethe.set_tier_interval('gold', 'conversations', '60 days')",
            ] {
                let error = #expect(throws: PostgresError.self, "\(call) did not wait for the batch") {
                    try setup.execute(call)
                }
                #expect(error?.sqlState == .lockNotAvailable, "\(call)")
            }
            try batch.execute("ROLLBACK")
            try setup.execute("SELECT lethe.set_tier_interval('gold', 'conversations', '60 days')")
        }
    }

    @Test func aHoldCommittedWhileOrphanGCWaitsStopsIt() async throws {
        try await withMigratedDatabase { database in
            let session = try database.connect()
            defer { session.close() }
            let registry = try Fixture.prepare(session, registry: Fixture.registry(grace: .milliseconds(1)))
            try session.execute("SELECT lethe.add_account('5')")
            try session.execute("INSERT INTO app.blobs (id, account_id) SELECT g, 5 FROM generate_series(1, 6) g")
            let collector = OrphanCollector(store: registry.blobStores["blobs"]!, timeouts: Self.patient)
            #expect(try collector.mark(account: "5", on: session) == (6, 0))
            try await Task.sleep(for: .milliseconds(20))  // past the grace
            let thread = ConnectionThread(conninfo: database.url, name: "orphan-gc")
            let pid: Int32 = try await thread.run { try $0.scalar("SELECT pg_backend_pid()") }

            try session.execute("BEGIN")
            try session.execute("SELECT lethe.place_hold('5', NULL, 'race test', NULL)")
            async let outcome = withWatchdog(database, thread: thread, pid: pid) { connection in
                do {
                    let (deleted, _) = try collector.collectBatch(
                        account: "5", limit: 10, task: nil, worker: nil, on: connection)
                    return .collected(deleted)
                } catch let blocked as OrphanCollectionBlocked {
                    return .blocked(blocked.reason)
                }
            }
            #expect(try await waitsForLock(database, pid: pid), "orphan GC did not wait for the account lock")
            try session.execute("COMMIT")
            #expect(try await outcome == .blocked("account on hold"))
            await thread.shutdown()
            #expect(try session.scalar("SELECT count(*) FROM app.blobs", as: Int.self) == 6)
        }
    }

    @Test func aBatchBehindAnApplicationsLockTimesOutThenDeletesOnceItIsReleased() async throws {
        try await withMigratedDatabase { database in
            let setup = try database.connect()
            defer { setup.close() }
            let registry = try Fixture.prepare(setup)
            try setup.execute("SELECT lethe.add_account('1')")
            for id in 1...3 { try Fixture.conversation(setup, id: Int64(id), account: 1, endedDaysAgo: 40) }
            let batch = RetentionBatch(
                type: registry.entityTypes["conversations"]!, registry: registry,
                timeouts: DeletionTimeouts(lock: .milliseconds(200), statement: .seconds(30)))
            let thread = ConnectionThread(conninfo: database.url, name: "batch")
            let pid: Int32 = try await thread.run { try $0.scalar("SELECT pg_backend_pid()") }

            // The application holds a lock on a child table the batch must delete from.
            let application = try database.connect()
            defer { application.close() }
            try application.execute("BEGIN")
            try application.execute("LOCK TABLE app.msg IN ACCESS EXCLUSIVE MODE")
            // 55P03 is lock_timeout's error; the watchdog's cancel would give 57014.
            let outcome = try await withWatchdog(database, thread: thread, pid: pid) { connection in
                .finished(try batch.run(account: "1", task: nil, worker: nil, on: connection).status)
            }
            #expect(outcome == .failed(sqlState: SQLState.lockNotAvailable.rawValue))
            try application.execute("ROLLBACK")
            // The batch's transaction rolled back: nothing is gone, nothing logged.
            #expect(try setup.scalar("SELECT count(*) FROM app.conv", as: Int.self) == 3)
            #expect(try setup.scalar("SELECT count(*) FROM app.att", as: Int.self) == 6)
            #expect(try setup.scalar("SELECT count(*) FROM lethe.deletion_records", as: Int.self) == 0)

            // Released: the next attempt deletes.
            let retry = try await thread.run { connection in
                try batch.run(account: "1", task: nil, worker: nil, on: connection)
            }
            #expect(retry.status == .deleted && retry.roots == 3)
            await thread.shutdown()
            #expect(try setup.scalar("SELECT count(*) FROM app.conv", as: Int.self) == 0)
        }
    }
}
