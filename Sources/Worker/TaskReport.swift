import LetheMetrics
import Logging
import Retention
import Store

/// How one task slice ended, reported once: one log line (notice when it succeeded, yielded
/// or was released; warning when the attempt failed; error when the task is dead) with the
/// counts and duration, and the task counters and duration histogram.
struct TaskReport {
    var task: ClaimedTask
    var outcome: TaskOutcome
    var counts: TaskCounts
    var duration: Duration

    /// `noop` tasks (benchmarks and tests run thousands) log at debug, not notice.
    static let quietKinds: Set<TaskKind> = [.noop]

    var outcomeName: String {
        switch outcome {
        case .succeeded: return "succeeded"
        case .yielded: return "yielded"
        case .failed: return task.attempt >= task.maxAttempts ? "dead" : "failed"
        case .dead: return "dead"
        case .released: return "released"
        }
    }

    func record(logger: Logger) {
        let kind = task.kind.rawValue
        let counter: LetheMetric
        switch outcomeName {
        case "succeeded": counter = .tasksCompleted
        case "yielded": counter = .tasksYielded
        case "failed": counter = .tasksFailed
        case "dead": counter = .tasksDead
        default: counter = .tasksReleased
        }
        counter.increment(kind)
        LetheMetric.taskDuration.observe(duration, kind)

        var metadata: Logger.Metadata = [
            LogKey.outcome: "\(outcomeName)",
            LogKey.durationMilliseconds: "\(Self.milliseconds(duration))",
        ]
        if counts.rowsDeleted > 0 { metadata[LogKey.rows] = "\(counts.rowsDeleted)" }
        if counts.bytesArchived > 0 { metadata[LogKey.bytes] = "\(counts.bytesArchived)" }
        if counts.uploads > 0 { metadata[LogKey.uploads] = "\(counts.uploads)" }
        if counts.failedUploads > 0 { metadata[LogKey.failedUploads] = "\(counts.failedUploads)" }
        switch outcome {
        case .failed(let error, let after):
            metadata[LogKey.error] = "\(error)"
            if outcomeName == "dead" {
                logger.error("task is dead: attempts exhausted", metadata: metadata)
            } else {
                metadata["lethe.retry_in"] = "\(after)"
                logger.warning("task attempt failed", metadata: metadata)
            }
        case .dead(let error):
            metadata[LogKey.error] = "\(error)"
            logger.error("task is dead", metadata: metadata)
        default:
            let level: Logger.Level = Self.quietKinds.contains(task.kind) ? .debug : .notice
            logger.log(level: level, "task \(outcomeName)", metadata: metadata)
        }
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
