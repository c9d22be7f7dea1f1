import Foundation
import Postgres
import Retention
import Store
import TestSupport
import Testing

/// The queue as operators run it: several `lethe` processes against one database.
@Suite("Worker and coordinator processes", .serialized)
struct WorkerProcessTests {
    @Test func twentyThousandTasksRunExactlyOnceAcrossFourWorkerProcesses() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            try TaskQueue().enqueue(
                (0..<20_000).map { NewTask(kind: "noop", accountID: "acct-\($0)", payload: #"{"record": true}"#) },
                on: connection)
            let fleet = try LetheFleet(databaseURL: database.url)
            defer { fleet.stopAll() }
            let workers = try (0..<4).map { _ in
                try fleet.launch(["worker", "--concurrency", "8", "--until-idle", "--log-level", "warning"])
            }
            for worker in workers {
                #expect(fleet.wait(worker, timeout: .seconds(240)), "worker still running\n\(fleet.logs())")
                #expect(worker.terminationStatus == 0, "\(fleet.logs())")
            }
            // Side effects, not states: every task ran, and none twice.
            let runs = try connection.query("SELECT count(*), count(DISTINCT task_id) FROM lethe.noop_runs")[0]
            let (total, distinct) = try runs.decode((Int, Int).self)
            #expect(total == 20_000 && distinct == 20_000)
            let workersUsed = try connection.scalar(
                "SELECT count(DISTINCT worker_id) FROM lethe.noop_runs", as: Int.self)
            #expect(workersUsed == 4)
            #expect(
                try connection.scalar("SELECT count(*) FROM lethe.tasks WHERE state = 'succeeded'", as: Int.self)
                    == 20_000)
        }
    }

    @Test func killedWorkersTasksFinishElsewhereWithinThirtySeconds() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            try TaskQueue().enqueue(
                (0..<400).map {
                    NewTask(kind: "noop", accountID: "acct-\($0)", payload: #"{"record": true, "sleep_ms": 100}"#)
                }, on: connection)
            let fleet = try LetheFleet(databaseURL: database.url)
            defer { fleet.stopAll() }
            // Default lease, heartbeat and rescue intervals: what operators get.
            let coordinator = try fleet.launch(["coordinator", "--log-level", "warning"])
            let victim = try fleet.launch(["worker", "--concurrency", "8", "--log-level", "warning"])
            let survivors = try (0..<2).map { _ in
                try fleet.launch(["worker", "--concurrency", "8", "--log-level", "warning"])
            }
            let victimPID = Int(victim.processIdentifier)
            let busy = try eventually(timeout: .seconds(30)) {
                try connection.scalar(
                    "SELECT coalesce(max(running_tasks), 0) FROM lethe.worker_status WHERE pid = $1", [victimPID],
                    as: Int.self) >= 4
            }
            #expect(busy, "the victim never held tasks\n\(fleet.logs())")
            kill(victim.processIdentifier, SIGKILL)
            let killedAt = Date()
            let held = try connection.query(
                "SELECT t.id FROM lethe.tasks t JOIN lethe.workers w ON w.id = t.worker_id WHERE w.pid = $1 AND t.state = 'running'",
                [victimPID]
            ).map { try $0.decode(Int64.self, at: 0) }
            #expect(!held.isEmpty)
            let done = try eventually(timeout: .seconds(60)) {
                try connection.scalar("SELECT count(*) FROM lethe.tasks WHERE state = 'succeeded'", as: Int.self) == 400
            }
            #expect(done, "\(fleet.logs())")
            // None lost: every task's side effect exists.
            #expect(try connection.scalar("SELECT count(DISTINCT task_id) FROM lethe.noop_runs", as: Int.self) == 400)
            // The killed worker's tasks ran again elsewhere, within 30 s of the kill.
            let rerun = try connection.query(
                """
                SELECT count(*), max(extract(epoch FROM finished_at))::float8
                FROM lethe.tasks WHERE id = ANY($1) AND attempts >= 2 AND state = 'succeeded'
                """, [held])[0]
            let (count, lastFinish) = try rerun.decode((Int, Double?).self)
            #expect(count == held.count)
            let delay = (lastFinish ?? .infinity) - killedAt.timeIntervalSince1970
            #expect(delay < 30, "the killed worker's tasks finished \(delay) s after the kill")
            let status = try connection.scalar(
                "SELECT status FROM lethe.worker_status WHERE pid = $1", [victimPID], as: String.self)
            #expect(status == "lost")
            for process in survivors + [coordinator] { process.terminate() }
            for process in survivors + [coordinator] { #expect(fleet.wait(process, timeout: .seconds(40))) }
        }
    }

    @Test func standbyCoordinatorTakesOverWhenTheLeaderIsKilled() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            let fleet = try LetheFleet(databaseURL: database.url)
            defer { fleet.stopAll() }
            let first = try fleet.launch(["coordinator", "--log-level", "warning"])
            let second = try fleet.launch(["coordinator", "--log-level", "warning"])
            let elected = try eventually(timeout: .seconds(20)) {
                try connection.scalar(
                    "SELECT count(*) FROM lethe.worker_status WHERE role = 'coordinator' AND status = 'alive'",
                    as: Int.self) == 2
                    && connection.scalar("SELECT count(*) FROM lethe.leader", as: Int.self) == 1
            }
            #expect(elected, "\(fleet.logs())")
            let leaderPID = try connection.scalar("SELECT pid FROM lethe.leader", as: Int32.self)
            let leader = [first, second].first { $0.processIdentifier == leaderPID }!
            let standby = [first, second].first { $0.processIdentifier != leaderPID }!
            kill(leader.processIdentifier, SIGKILL)
            let clock = ContinuousClock()
            let start = clock.now
            let tookOver = try eventually(timeout: .seconds(15)) {
                try connection.scalar("SELECT pid FROM lethe.leader", as: Int32.self) == standby.processIdentifier
            }
            let elapsed = start.duration(to: clock.now)
            #expect(tookOver, "\(fleet.logs())")
            #expect(elapsed < .seconds(15), "the standby led after \(elapsed)")
            let leaders = try connection.scalar(
                "SELECT count(*) FROM lethe.worker_status WHERE is_leader", as: Int.self)
            #expect(leaders == 1)
            standby.terminate()
            #expect(fleet.wait(standby, timeout: .seconds(10)))
            #expect(standby.terminationStatus == 0)
            #expect(
                try connection.scalar("SELECT count(*) FROM lethe.leader", as: Int.self) == 0, "a clean exit steps down"
            )
        }
    }

    @Test func twoCoordinatorsNeverEnqueueTheSameDueTaskTwice() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            try connection.execute(
                """
                INSERT INTO lethe.schedules (kind, account_id, every, next_run_at)
                SELECT 'noop', 'acct-' || g, interval '1 second', now() FROM generate_series(1, 200) g
                """)
            let fleet = try LetheFleet(databaseURL: database.url)
            defer { fleet.stopAll() }
            let config = try writeConfig("coordinator:\n  tick_interval: 200ms\n")
            let coordinators = try (0..<2).map { _ in
                try fleet.launch(["coordinator", "--config", config, "--log-level", "warning"])
            }
            let worker = try fleet.launch(["worker", "--concurrency", "32", "--log-level", "warning"])
            try await Task.sleep(for: .seconds(6))
            for process in coordinators + [worker] { process.terminate() }
            for process in coordinators + [worker] { #expect(fleet.wait(process, timeout: .seconds(40))) }
            let gaps = try connection.query(
                """
                SELECT count(*), coalesce(min(gap), 99)::float8, max(per_schedule - span)::float8
                FROM (
                    SELECT extract(epoch FROM created_at - lag(created_at) OVER w) AS gap,
                           count(*) OVER (PARTITION BY account_id) AS per_schedule,
                           extract(epoch FROM max(created_at) OVER (PARTITION BY account_id)
                                              - min(created_at) OVER (PARTITION BY account_id)) AS span
                    FROM lethe.tasks
                    WINDOW w AS (PARTITION BY account_id ORDER BY created_at)
                ) g
                """)[0]
            let (tasks, minimumGap, excess) = try gaps.decode((Int, Double, Double).self)
            #expect(tasks >= 200 * 3, "schedules ran repeatedly\n\(fleet.logs())")
            // Two coordinators enqueuing one due time would do it within the same tick (a gap of
            // milliseconds); a tick that ran late may legitimately leave less than half the
            // period before the next due time (0.46 s was seen on a loaded CI machine).
            #expect(minimumGap > 0.15, "one schedule enqueued twice for one due time (gap \(minimumGap) s)")
            // Every second at most once, however long a loaded machine took to stop the processes.
            #expect(excess <= 2, "a schedule enqueued more often than every second (\(excess) over its span)")
        }
    }

    @Test func sigtermDrainsWithNothingLeftRunning() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            try TaskQueue().enqueue(
                (0..<40).map { NewTask(kind: "noop", accountID: "acct-\($0)", payload: #"{"sleep_ms": 700}"#) },
                on: connection)
            let fleet = try LetheFleet(databaseURL: database.url)
            defer { fleet.stopAll() }
            let worker = try fleet.launch(["worker", "--concurrency", "8", "--log-level", "info"])
            let busy = try eventually(timeout: .seconds(30)) {
                try connection.scalar("SELECT count(*) FROM lethe.tasks WHERE state = 'running'", as: Int.self) == 8
            }
            #expect(busy, "\(fleet.logs())")
            worker.terminate()  // SIGTERM
            #expect(fleet.wait(worker, timeout: .seconds(40)), "\(fleet.logs())")
            #expect(worker.terminationStatus == 0, "\(fleet.logs())")
            let states = try connection.query(
                """
                SELECT count(*) FILTER (WHERE state = 'running'), count(*) FILTER (WHERE state = 'succeeded'),
                       count(*) FILTER (WHERE state = 'available' AND attempts = 0)
                FROM lethe.tasks
                """)[0]
            let (running, succeeded, untouched) = try states.decode((Int, Int, Int).self)
            #expect(running == 0)
            #expect(succeeded >= 8, "the tasks in hand finished within the grace period")
            #expect(succeeded + untouched == 40)
            #expect(try connection.scalar("SELECT status FROM lethe.worker_status", as: String.self) == "stopped")
        }
    }

    @Test func smallTenantsStartWithinOneBudgetOfABigOne() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            let queue = TaskQueue()
            // The big tenant's task needs 300 budget slices; it was due first.
            try queue.enqueue(
                [
                    NewTask(
                        kind: "noop", accountID: "big", payload: #"{"record": true, "slices": 300, "sleep_ms": 20}"#,
                        runAt: Date().addingTimeInterval(-5))
                ], on: connection)
            try queue.enqueue(
                (0..<50).map { NewTask(kind: "noop", accountID: "small-\($0)", payload: #"{"record": true}"#) },
                on: connection)
            let fleet = try LetheFleet(databaseURL: database.url)
            defer { fleet.stopAll() }
            let worker = try fleet.launch(["worker", "--concurrency", "2", "--until-idle", "--log-level", "warning"])
            #expect(fleet.wait(worker, timeout: .seconds(180)), "\(fleet.logs())")
            let order = try connection.query(
                """
                SELECT t.account_id, r.ran_at FROM lethe.noop_runs r JOIN lethe.tasks t ON t.id = r.task_id
                ORDER BY r.ran_at, r.task_id
                """
            ).map { try $0.decode((String, Date).self) }
            let bigRuns = order.filter { $0.0 == "big" }.map(\.1)
            let smallRuns = order.filter { $0.0 != "big" }.map(\.1)
            #expect(bigRuns.count == 300)
            #expect(smallRuns.count == 50)
            // Every small tenant ran before the big one's second slice began.
            #expect(smallRuns.max()! < bigRuns[1], "a small tenant waited longer than one budget slice")
        }
    }

    @Test func aWorkerNoticesItLostATaskAndStopsTouchingIt() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            try TaskQueue().enqueue(
                [NewTask(kind: "noop", accountID: "long", payload: #"{"sleep_ms": 60000, "record": true}"#)],
                on: connection)
            let fleet = try LetheFleet(databaseURL: database.url)
            defer { fleet.stopAll() }
            let config = try writeConfig("worker:\n  lease: 4s\n  heartbeat_interval: 1s\n")
            let worker = try fleet.launch(["worker", "--until-idle", "--config", config, "--log-level", "notice"])
            let running = try eventually(timeout: .seconds(20)) {
                try connection.scalar("SELECT count(*) FROM lethe.tasks WHERE state = 'running'", as: Int.self) == 1
            }
            #expect(running, "\(fleet.logs())")
            let id = try connection.scalar("SELECT id FROM lethe.tasks", as: Int64.self)
            let cancel = try LetheProcess.run(
                ["task", "cancel", "\(id)"], environment: ["LETHE_DATABASE_URL": database.url])
            #expect(cancel.stdout.contains("cancelled 1 task"))
            // The next heartbeat tells the worker; the handler stops instead of sleeping a minute.
            #expect(fleet.wait(worker, timeout: .seconds(15)), "the handler kept the cancelled task\n\(fleet.logs())")
            #expect(fleet.logs().contains("lease lost: the task was rescued or cancelled"))
            #expect(try connection.scalar("SELECT state FROM lethe.tasks", as: String.self) == "cancelled")
            #expect(try connection.scalar("SELECT count(*) FROM lethe.noop_runs", as: Int.self) == 0)
        }
    }

    @Test func pollOnlyWorkersNeedNoListen() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            try TaskQueue().enqueue(
                (0..<500).map { NewTask(kind: "noop", accountID: "\($0)", payload: #"{"record": true}"#) },
                on: connection)
            let fleet = try LetheFleet(databaseURL: database.url)
            defer { fleet.stopAll() }
            let worker = try fleet.launch(["worker", "--poll-only", "--log-level", "warning"])
            let done = try eventually(timeout: .seconds(60)) {
                try connection.scalar("SELECT count(DISTINCT task_id) FROM lethe.noop_runs", as: Int.self) == 500
            }
            #expect(done, "\(fleet.logs())")
            // While it runs: its sessions exist, and none of them ever issued LISTEN.
            let sessions = try connection.query(
                """
                SELECT count(*), count(*) FILTER (WHERE query ILIKE 'LISTEN%')
                FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'lethe'
                """)[0].decode((Int, Int).self)
            #expect(sessions.0 >= 2 && sessions.1 == 0)
            worker.terminate()
            #expect(fleet.wait(worker, timeout: .seconds(40)))
            #expect(worker.terminationStatus == 0)
        }
    }

    @Test func untilIdleIgnoresKindsThisWorkerCannotRun() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            try TaskQueue().enqueue(
                [NewTask(kind: "archive-from-the-future", accountID: "a"), NewTask(kind: "noop", accountID: "b")],
                on: connection)
            let fleet = try LetheFleet(databaseURL: database.url)
            defer { fleet.stopAll() }
            let worker = try fleet.launch(["worker", "--until-idle", "--log-level", "warning"])
            #expect(fleet.wait(worker, timeout: .seconds(30)), "\(fleet.logs())")
            #expect(worker.terminationStatus == 0)
            let states = try connection.query("SELECT kind, state FROM lethe.tasks ORDER BY kind").map {
                try $0.decode((String, String).self)
            }
            #expect(states.map(\.1) == ["available", "succeeded"], "the unknown kind waits for a worker that runs it")
        }
    }

    @Test func failingTasksRetryWithBackoffThenDie() async throws {
        try await withMigratedDatabase { database in
            let config = try writeConfig("queue:\n  max_attempts: 3\n  retry_base: 100ms\n  retry_max: 200ms\n")
            let fleet = try LetheFleet(databaseURL: database.url)
            defer { fleet.stopAll() }
            let enqueue = try LetheProcess.run(
                [
                    "task", "enqueue", "noop", "--account", "flaky", "--payload",
                    #"{"fail_attempts": 2, "record": true}"#,
                    "--config", config,
                ], environment: ["LETHE_DATABASE_URL": database.url])
            #expect(enqueue.status == 0, "\(enqueue.output)")
            _ = try LetheProcess.run(
                [
                    "task", "enqueue", "noop", "--account", "hopeless", "--payload", #"{"fail_attempts": 99}"#,
                    "--config", config,
                ],
                environment: ["LETHE_DATABASE_URL": database.url])
            let run = try fleet.launch(["run", "--until-idle", "--config", config, "--log-level", "warning"])
            #expect(fleet.wait(run, timeout: .seconds(60)), "\(fleet.logs())")
            #expect(run.terminationStatus == 0)
            let connection = try database.connect()
            let rows = try connection.query(
                "SELECT account_id, state, attempts, last_error FROM lethe.tasks ORDER BY account_id"
            ).map { try $0.decode((String, String, Int, String?).self) }
            #expect(rows.count == 2)
            #expect(rows[0].0 == "flaky" && rows[0].1 == "succeeded" && rows[0].2 == 3)
            #expect(rows[1].0 == "hopeless" && rows[1].1 == "dead" && rows[1].2 == 3)
            #expect(rows[1].3 == "noop failed on purpose (attempt 3)")
            let status = try LetheProcess.run(["status"], environment: ["LETHE_DATABASE_URL": database.url])
            #expect(status.stdout.contains("Failures (lethe.failures): 0 retrying, 1 dead"))
            let retry = try LetheProcess.run(
                [
                    "task", "retry",
                    "\(try connection.scalar("SELECT id FROM lethe.tasks WHERE account_id = 'hopeless'", as: Int64.self))",
                ],
                environment: ["LETHE_DATABASE_URL": database.url])
            #expect(retry.stdout.contains("retried 1 task"))
            #expect(
                try connection.scalar("SELECT state FROM lethe.tasks WHERE account_id = 'hopeless'", as: String.self)
                    == "available")
        }
    }
}
