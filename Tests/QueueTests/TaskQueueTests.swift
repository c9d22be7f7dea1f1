import Foundation
import Postgres
import Retention
import Store
import TestSupport
import Testing

/// The queue's statements against a real database, one process.
@Suite("Task queue statements")
struct TaskQueueTests {
    let queue = TaskQueue(defaultMaxAttempts: 3)

    @Test func enqueueIsIdempotentPerKindAccountAndType() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            let tasks = [
                NewTask(kind: "noop", accountID: "a", entityType: "t"),
                NewTask(kind: "noop", accountID: "a", entityType: "t"),
                NewTask(kind: "noop", accountID: "a"), NewTask(kind: "noop", accountID: "a"), NewTask(kind: "noop"),
                NewTask(kind: "noop", accountID: "b", entityType: "t"),
            ]
            #expect(try queue.enqueue(tasks, on: connection) == 4)
            #expect(try queue.enqueue(tasks, on: connection) == 0)
            // Once finished, the same key may be enqueued again.
            try connection.execute("UPDATE lethe.tasks SET state = 'succeeded' WHERE account_id = 'b'")
            #expect(try queue.enqueue(tasks, on: connection) == 1)
        }
    }

    @Test func enqueueNotifiesOncePerStatement() async throws {
        try await withMigratedDatabase { database in
            let listener = try database.connect()
            try listener.listen(TaskQueue.channel)
            let connection = try database.connect()
            let tasks = (0..<1000).map { NewTask(kind: "noop", accountID: "acct-\($0)") }
            try queue.enqueue(tasks, on: connection)
            let first = try listener.waitForNotification(timeout: .seconds(5))
            #expect(first?.payload == "1000")
            #expect(try listener.waitForNotification(timeout: .milliseconds(300)) == nil)
            try queue.enqueue(tasks, on: connection)  // all duplicates: no notification
            #expect(try listener.waitForNotification(timeout: .milliseconds(300)) == nil)
        }
    }

    @Test func claimOrderIsPriorityThenRunAtAndSkipsHeldRows() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            let past = Date().addingTimeInterval(-60)
            try queue.enqueue(
                [
                    NewTask(kind: "noop", accountID: "late", priority: 0),
                    NewTask(kind: "noop", accountID: "early", priority: 0, runAt: past),
                    NewTask(kind: "noop", accountID: "urgent", priority: -1),
                    NewTask(kind: "noop", accountID: "future", runAt: Date().addingTimeInterval(3600)),
                ], on: connection)
            let a = UUID()
            let b = UUID()
            let first = try queue.claim(limit: 2, worker: a, lease: .seconds(30), on: connection)
            #expect(first.map(\.accountID) == ["urgent", "early"])
            #expect(first.allSatisfy { $0.attempt == 1 })
            // A second worker inside an open transaction holding nothing sees only what is left.
            let other = try database.connect()
            let second = try queue.claim(limit: 10, worker: b, lease: .seconds(30), on: other)
            #expect(second.map(\.accountID) == ["late"])
        }
    }

    @Test func concurrentClaimsNeverOverlap() async throws {
        try await withMigratedDatabase { database in
            let setup = try database.connect()
            try queue.enqueue((0..<2000).map { NewTask(kind: "noop", accountID: "\($0)") }, on: setup)
            let queue = self.queue
            let threads = (0..<4).map { ConnectionThread(conninfo: database.url, name: "claim-\($0)") }
            let claimed = try await withThrowingTaskGroup(of: [Int64].self) { group in
                for thread in threads {
                    group.addTask {
                        var mine: [Int64] = []
                        let worker = UUID()
                        while true {
                            let batch = try await thread.run {
                                try queue.claim(limit: 37, worker: worker, lease: .seconds(30), on: $0)
                            }
                            if batch.isEmpty { return mine }
                            mine += batch.map(\.id)
                        }
                    }
                }
                return try await group.reduce(into: [Int64]()) { $0 += $1 }
            }
            for thread in threads { await thread.shutdown() }
            #expect(claimed.count == 2000)
            #expect(Set(claimed).count == 2000)
        }
    }

    @Test func claimAcknowledgesThePreviousCycleInTheSameStatement() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            try queue.enqueue((0..<6).map { NewTask(kind: "noop", accountID: "\($0)") }, on: connection)
            let worker = UUID()
            let first = try queue.claim(limit: 3, worker: worker, lease: .seconds(30), on: connection)
            let successes = first.map { TaskAcknowledgement($0.hold, outcome: .succeeded) }
            let second = try queue.claim(
                limit: 2, worker: worker, lease: .seconds(30), kinds: ["noop"], acknowledging: successes, on: connection
            )
            #expect(second.count == 2)
            #expect(
                try connection.scalar("SELECT count(*) FROM lethe.tasks WHERE state = 'succeeded'", as: Int.self) == 3)
            let mixed = [
                TaskAcknowledgement(id: second[0].id, claim: second[0].claim, outcome: .yielded()),
                TaskAcknowledgement(
                    id: second[1].id, claim: second[1].claim, outcome: .failed(error: "x", retryAfter: .seconds(60))),
            ]
            let third = try queue.claim(
                limit: 10, worker: worker, lease: .seconds(30), acknowledging: mixed, on: connection)
            // The yielded task became due after the statement's snapshot: not claimed in it.
            #expect(third.count == 1)
            let states = try connection.query("SELECT id, state FROM lethe.tasks ORDER BY id").map {
                try $0.decode((Int64, String).self)
            }
            #expect(states.first { $0.0 == second[0].id }?.1 == "available")
            #expect(states.first { $0.0 == second[1].id }?.1 == "failed")
            #expect(mixed[0].requeuesNow && !mixed[1].requeuesNow)
        }
    }

    @Test func failuresBackOffThenDie() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            try queue.enqueue([NewTask(kind: "noop", accountID: "x")], on: connection)
            let worker = UUID()
            for attempt in 1...3 {
                try connection.execute("UPDATE lethe.tasks SET run_at = now() - interval '1 second'")
                let task = try #require(
                    try queue.claim(limit: 1, worker: worker, lease: .seconds(30), on: connection).first)
                #expect(task.attempt == attempt)
                let applied = try queue.acknowledge(
                    [
                        .init(
                            id: task.id, claim: task.claim,
                            outcome: .failed(error: "boom \(attempt)", retryAfter: .seconds(30)))
                    ],
                    worker: worker, on: connection)
                #expect(applied == 1)
                let row = try connection.query(
                    "SELECT state, last_error, extract(epoch FROM run_at - now())::float8, finished_at IS NULL FROM lethe.tasks"
                )[0]
                let (state, error, wait, unfinished) = try row.decode((String, String, Double, Bool).self)
                #expect(error == "boom \(attempt)")
                if attempt < 3 {
                    #expect(state == "failed" && unfinished)
                    #expect(wait > 28 && wait <= 30, "retry scheduled after the backoff")
                } else {
                    #expect(state == "dead" && !unfinished)
                }
            }
            let failures = try connection.scalar(
                "SELECT count(*) FROM lethe.failures WHERE state = 'dead'", as: Int.self)
            #expect(failures == 1)
        }
    }

    @Test func yieldGoesToTheBackWithoutSpendingAnAttempt() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            let past = Date().addingTimeInterval(-10)
            try queue.enqueue(
                [NewTask(kind: "noop", accountID: "big", runAt: past.addingTimeInterval(-1))], on: connection)
            try queue.enqueue(
                (0..<3).map { NewTask(kind: "noop", accountID: "small-\($0)", runAt: past) }, on: connection)
            let worker = UUID()
            let big = try #require(try queue.claim(limit: 1, worker: worker, lease: .seconds(30), on: connection).first)
            #expect(big.accountID == "big")
            try queue.acknowledge([.init(big.hold, outcome: .yielded())], worker: worker, on: connection)
            let next = try queue.claim(limit: 10, worker: worker, lease: .seconds(30), on: connection)
            #expect(next.map(\.accountID) == ["small-0", "small-1", "small-2", "big"])
            #expect(next.last?.attempt == 1, "a yield does not count as an attempt")
            #expect(next.last?.yields == 1)
        }
    }

    @Test func lateAcknowledgementAfterRescueChangesNothing() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            try queue.enqueue([NewTask(kind: "noop", accountID: "x")], on: connection)
            let slow = UUID()
            let fast = UUID()
            let task = try #require(try queue.claim(limit: 1, worker: slow, lease: .seconds(30), on: connection).first)
            // The slow worker goes silent: its lease runs out and the task is rescued.
            try connection.execute("UPDATE lethe.tasks SET lease_expires_at = now() - interval '1 second'")
            #expect(try queue.rescueExpired(on: connection) == [task.id])
            let state = try connection.scalar("SELECT state || ':' || last_error FROM lethe.tasks", as: String.self)
            #expect(state.hasPrefix("failed:lease expired"))
            let again = try #require(try queue.claim(limit: 1, worker: fast, lease: .seconds(30), on: connection).first)
            #expect(again.attempt == 2)
            // The slow worker's heartbeat no longer holds it, and its acknowledgement is ignored.
            #expect(
                try queue.heartbeat(worker: slow, holding: [task.hold], lease: .seconds(30), on: connection).isEmpty)
            #expect(
                try queue.acknowledge(
                    [.init(id: task.id, claim: task.claim, outcome: .succeeded)], worker: slow, on: connection) == 0)
            #expect(try connection.scalar("SELECT state FROM lethe.tasks", as: String.self) == "running")
            #expect(
                try queue.acknowledge(
                    [.init(id: again.id, claim: again.claim, outcome: .succeeded)], worker: fast, on: connection) == 1)
            #expect(try connection.scalar("SELECT state FROM lethe.tasks", as: String.self) == "succeeded")
        }
    }

    @Test func anOldClaimsAcknowledgementNeverLandsOnANewerClaim() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            try queue.enqueue([NewTask(kind: "noop", accountID: "x")], on: connection)
            let a = UUID()
            let b = UUID()
            // A holds attempt 1; it is rescued; B claims (attempt 2) and yields (attempts back to 1);
            // A claims again: attempt 1 by A once more — but a new claim.
            let old = try #require(try queue.claim(limit: 1, worker: a, lease: .seconds(30), on: connection).first)
            try connection.execute("UPDATE lethe.tasks SET lease_expires_at = now() - interval '1 second'")
            try queue.rescueExpired(on: connection)
            let byB = try #require(try queue.claim(limit: 1, worker: b, lease: .seconds(30), on: connection).first)
            try queue.acknowledge([.init(byB.hold, outcome: .yielded())], worker: b, on: connection)
            try connection.execute("UPDATE lethe.tasks SET attempts = 0")  // as after the yield and a retry
            let again = try #require(try queue.claim(limit: 1, worker: a, lease: .seconds(30), on: connection).first)
            #expect(again.attempt == old.attempt && again.claim > old.claim)
            // The old handler's late acknowledgement and heartbeat change nothing.
            #expect(try queue.acknowledge([.init(old.hold, outcome: .succeeded)], worker: a, on: connection) == 0)
            #expect(try queue.heartbeat(worker: a, holding: [old.hold], lease: .seconds(30), on: connection).isEmpty)
            #expect(try connection.scalar("SELECT state FROM lethe.tasks", as: String.self) == "running")
            #expect(
                try queue.heartbeat(worker: a, holding: [again.hold], lease: .seconds(30), on: connection) == [
                    again.hold
                ])
        }
    }

    @Test func nulInAnErrorMessageDoesNotBlockAcknowledgements() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            try queue.enqueue([NewTask(kind: "noop", accountID: "x")], on: connection)
            let worker = UUID()
            let task = try #require(
                try queue.claim(limit: 1, worker: worker, lease: .seconds(30), on: connection).first)
            let ack = TaskAcknowledgement(task.hold, outcome: .dead(error: "bad\u{0}byte"))
            #expect(try queue.acknowledge([ack], worker: worker, on: connection) == 1)
            #expect(try connection.scalar("SELECT last_error FROM lethe.tasks", as: String.self) == "badbyte")
        }
    }

    @Test func heartbeatExtendsLeasesAndSeesCancellation() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            try queue.enqueue(
                [NewTask(kind: "noop", accountID: "a"), NewTask(kind: "noop", accountID: "b")], on: connection)
            let worker = UUID()
            let tasks = try queue.claim(limit: 2, worker: worker, lease: .seconds(1), on: connection)
            #expect(
                try queue.heartbeat(worker: worker, holding: tasks.map(\.hold), lease: .seconds(60), on: connection)
                    .count
                    == 2)
            let lease = try connection.scalar(
                "SELECT min(extract(epoch FROM lease_expires_at - now()))::float8 FROM lethe.tasks", as: Double.self)
            #expect(lease > 50)
            #expect(try TaskAdministration().cancel([tasks[0].id], on: connection) == [tasks[0].id])
            let held = try queue.heartbeat(
                worker: worker, holding: tasks.map(\.hold), lease: .seconds(60), on: connection)
            #expect(held == [tasks[1].hold])
        }
    }

    @Test func retryAndCancelByHand() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            try queue.enqueue([NewTask(kind: "noop", accountID: "a", maxAttempts: 1)], on: connection)
            let worker = UUID()
            let task = try #require(
                try queue.claim(limit: 1, worker: worker, lease: .seconds(30), on: connection).first)
            try queue.acknowledge(
                [.init(id: task.id, claim: task.claim, outcome: .dead(error: "bad payload"))], worker: worker,
                on: connection)
            let admin = TaskAdministration()
            // Another unfinished task for the same key blocks the retry, with a clear error.
            try queue.enqueue([NewTask(kind: "noop", accountID: "a")], on: connection)
            let error = #expect(throws: PostgresError.self) { try admin.retry([task.id], on: connection) }
            #expect(error?.message.contains("already has an unfinished task") == true)
            try connection.execute("DELETE FROM lethe.tasks WHERE id <> $1", [task.id])
            #expect(try admin.retry([task.id, 999_999], on: connection) == [task.id])
            let row = try connection.query("SELECT state, attempts FROM lethe.tasks WHERE id = $1", [task.id])[0]
            let (state, attempts) = try row.decode((String, Int).self)
            #expect(state == "available" && attempts == 0)
            #expect(try admin.cancel([task.id], on: connection) == [task.id])
            #expect(try admin.cancel([task.id], on: connection).isEmpty)
        }
    }

    @Test func pruneDeletesOnlyOldFinishedTasksInBatches() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            try queue.enqueue((0..<250).map { NewTask(kind: "noop", accountID: "\($0)") }, on: connection)
            try connection.execute(
                """
                UPDATE lethe.tasks SET state = CASE WHEN id % 5 = 0 THEN 'dead' ELSE 'succeeded' END,
                       finished_at = now() - interval '2 days'
                WHERE id % 2 = 0
                """)
            let pruned = try queue.prune(
                keepFinished: .seconds(86_400), keepDead: .seconds(7 * 86_400), batch: 7, on: connection)
            let remaining = try connection.query(
                "SELECT count(*) FILTER (WHERE state = 'dead'), count(*) FILTER (WHERE state = 'available') FROM lethe.tasks"
            )[0]
            let (dead, available) = try remaining.decode((Int, Int).self)
            #expect(pruned == 100)  // the 100 succeeded ones; the 25 dead stay 7 days
            #expect(dead == 25 && available == 125)
        }
    }

    @Test func schedulesEnqueueOncePerDueTimeAndAdvance() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            try connection.execute(
                """
                INSERT INTO lethe.schedules (kind, account_id, every, next_run_at)
                SELECT 'noop', 'acct-' || g, interval '1 hour', now() - interval '3 hours' FROM generate_series(1, 100) g
                """)
            let first = try queue.enqueueDueSchedules(on: connection)
            #expect(first.due == 100 && first.enqueued == 100)
            let second = try queue.enqueueDueSchedules(on: connection)
            #expect(second.due == 0 && second.enqueued == 0)
            let next = try connection.scalar(
                "SELECT min(extract(epoch FROM next_run_at - now()))::float8 FROM lethe.schedules", as: Double.self)
            #expect(next > 3500, "missed runs are skipped, not replayed")
            #expect(try !queue.isIdle(on: connection))
        }
    }

    /// A task committed by a transaction that began after the idle check's transaction is
    /// due, not "enqueued for later": its run_at is its own `now()`, later than the checker's.
    /// (Autocommit statements meet this too: a statement's `now()` is fixed before its
    /// snapshot is taken. `lethe run --until-idle` exited with an approved job's task queued.)
    @Test func aTaskCommittedAfterTheCheckersTransactionBeganIsNotIdle() async throws {
        try await withMigratedDatabase { database in
            let checker = try database.connect()
            let enqueuer = try database.connect()
            try checker.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            _ = try checker.query("SELECT now()")
            try await Task.sleep(for: .milliseconds(20))
            #expect(try queue.enqueue([NewTask(kind: "noop")], on: enqueuer) == 1)
            #expect(try !queue.isIdle(on: checker), "a task due since its enqueue counted as for later")
            try checker.execute("ROLLBACK")
        }
    }
}
