import Foundation
import Logging
import Postgres
import Retention
import Store

/// The built-in `noop` task kind, for benchmarks, tests and smoke-testing a deployment.
///
/// Its payload may ask for: `sleep_ms` (hold the slot that long), `record` (insert a row
/// into `lethe.noop_runs` — a side effect tests can count), `fail_attempts` (fail the first
/// N attempts), `slices` (report `.more` until it has run that many budget slices).
public struct NoopHandler: TaskHandler {
    public let kind = TaskKind.noop

    public init() {}

    struct Payload: Decodable {
        var sleepMilliseconds: Int?
        var record: Bool?
        var failAttempts: Int?
        var slices: Int?

        enum CodingKeys: String, CodingKey {
            case sleepMilliseconds = "sleep_ms"
            case record
            case failAttempts = "fail_attempts"
            case slices
        }
    }

    public func run(_ task: ClaimedTask, context: TaskContext) async throws -> TaskProgress {
        // The common benchmark payload is "{}": skip the decoder for it.
        let payload =
            task.payload == "{}"
            ? Payload()
            : try JSONDecoder().decode(Payload.self, from: Data(task.payload.utf8))
        if let sleep = payload.sleepMilliseconds, sleep > 0 {
            // Sleep in short steps, stopping as soon as the task is no longer ours: what every
            // handler must do between units of work.
            let end = ContinuousClock.now + .milliseconds(sleep)
            while ContinuousClock.now < end {
                if context.leaseLost {
                    // Not "done": the work did not finish. Released, it runs again if the
                    // lease was in fact still ours (a false alarm); if not, nothing changes.
                    context.logger.notice("stopping: the task is no longer held by this worker")
                    throw CancellationError()
                }
                try await Task.sleep(for: min(.milliseconds(50), end - ContinuousClock.now))
            }
        }
        if payload.record == true {
            let (id, attempt, worker) = (task.id, task.attempt, context.workerID)
            try await context.database.run { connection in
                try NoopRuns.record(task: id, attempt: attempt, worker: worker, on: connection)
            }
        }
        if let failures = payload.failAttempts, task.attempt <= failures {
            throw NoopFailure(attempt: task.attempt)
        }
        if let slices = payload.slices, task.yields + 1 < slices {
            return .more
        }
        return .done
    }

    struct NoopFailure: Error, CustomStringConvertible {
        var attempt: Int
        var description: String { "noop failed on purpose (attempt \(attempt))" }
    }
}
