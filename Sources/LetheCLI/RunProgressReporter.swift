import Foundation
import Postgres
import ServiceLifecycle
import Store
import Worker

#if canImport(Glibc)
    import Glibc
#endif

/// `lethe run`'s live progress line on a terminal: once a second, this process's tasks and
/// rows (the pool's counter; its batches in `lethe.deletion_records`) and the queue's backlog,
/// redrawn in place. A `Service` listed first in the run's group, so it is shut down last and
/// its final line counts every task; it never ends the run itself (a failed query shows `?`).
final class RunProgressReporter: Service {
    private let pool: WorkerPool
    private let conninfo: String
    private let target: RunProgressTarget
    private let interval: Duration

    init(pool: WorkerPool, conninfo: String, target: RunProgressTarget, interval: Duration = .seconds(1)) {
        self.pool = pool
        self.conninfo = conninfo
        self.target = target
        self.interval = interval
    }

    /// A reporter when standard error or standard output is a terminal; nil otherwise.
    static func forTerminal(pool: WorkerPool, conninfo: String) -> RunProgressReporter? {
        RunProgressTarget.choose(
            standardErrorIsTerminal: isatty(STDERR_FILENO) == 1, standardOutputIsTerminal: isatty(STDOUT_FILENO) == 1
        ).map { RunProgressReporter(pool: pool, conninfo: conninfo, target: $0) }
    }

    func run() async {
        let database = ConnectionThread(conninfo: conninfo, name: "lethe-progress", applicationName: "lethe-progress")
        let (queries, worker, started) = (RunProgressQueries(), pool.id, ContinuousClock.now)
        var after: Int64? = try? await database.run { try queries.lastDeletion(on: $0) }
        var rows = 0
        var previous: RunProgressSample?

        func sample() async -> RunProgressSample {
            if let since = after {
                if let (more, last) = try? await database.run({ try queries.deleted(by: worker, after: since, on: $0) })
                {
                    rows += more
                    after = last
                }
            } else {
                after = try? await database.run { try queries.lastDeletion(on: $0) }
            }
            let backlog = try? await database.run { try queries.backlog(on: $0) }
            return RunProgressSample(
                elapsed: ContinuousClock.now - started, tasksDone: pool.tasksRun, rowsDeleted: rows,
                queued: backlog?.queued, running: backlog?.running)
        }

        while await pause() {
            let current = await sample()
            write(RunProgressLine.redraw(RunProgressLine.text(current, previous: previous)))
            previous = current
        }
        // The last line stays, with the whole run's rate (the queries run uncancelled here).
        let last = await sample()
        write(RunProgressLine.finish(RunProgressLine.text(last)))
        await database.shutdown()
    }

    /// Sleeps for the interval in short steps; false once the run shuts down (gracefully or not).
    private func pause() async -> Bool {
        let until = ContinuousClock.now + interval
        while ContinuousClock.now < until {
            if Task.isShuttingDownGracefully || Task.isCancelled { return false }
            try? await Task.sleep(for: min(.milliseconds(100), until - .now))
        }
        return !(Task.isShuttingDownGracefully || Task.isCancelled)
    }

    private func write(_ text: String) {
        let handle = target == .standardError ? FileHandle.standardError : FileHandle.standardOutput
        handle.write(Data(text.utf8))
    }
}
