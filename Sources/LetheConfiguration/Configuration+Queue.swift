import Coordinator
import Retention
import Store
import Worker

/// The queue settings (`queue.*`, `worker.*`, `coordinator.*`) as the worker pool and the
/// coordinator take them, checked once.
extension Configuration {
    /// The queue with the configured default attempts.
    package func taskQueue() -> TaskQueue {
        TaskQueue(defaultMaxAttempts: integer("queue.max_attempts") ?? 20)
    }

    /// Worker settings from the file, then the flags.
    package func workerConfiguration(concurrency: Int?, untilIdle: Bool, pollOnly: Bool) throws -> WorkerConfiguration {
        var worker = WorkerConfiguration()
        worker.concurrency = concurrency ?? integer("worker.concurrency") ?? worker.concurrency
        override(
            &worker, integers: ["worker.claim_batch": \.claimBatch, "worker.claim_loops": \.claimLoops])
        override(
            &worker,
            durations: [
                "worker.lease": \.lease, "worker.heartbeat_interval": \.heartbeatInterval,
                "worker.rescue_interval": \.rescueInterval, "worker.poll_interval": \.pollInterval,
                "worker.task_budget": \.taskBudget, "worker.shutdown_grace": \.shutdownGrace,
            ])
        worker.listen = !pollOnly && (boolean("worker.listen") ?? true)
        worker.untilIdle = untilIdle
        let base = duration("queue.retry_base") ?? worker.retry.base
        let maximum = duration("queue.retry_max") ?? worker.retry.maximum
        guard base > .zero, maximum >= base else {
            throw UsageError(
                "queue.retry_base (\(DurationText.format(base))) must be positive and not above queue.retry_max "
                    + "(\(DurationText.format(maximum)))")
        }
        worker.retry = RetryPolicy(base: base, maximum: maximum)
        guard worker.concurrency >= 1 else {
            throw UsageError(
                "--concurrency \(worker.concurrency) is not allowed; expected a whole number of at least 1")
        }
        guard worker.heartbeatInterval > .zero, worker.heartbeatInterval * 2 <= worker.lease else {
            throw UsageError(
                "worker.heartbeat_interval (\(DurationText.format(worker.heartbeatInterval))) must be positive and at "
                    + "most half of worker.lease (\(DurationText.format(worker.lease))), so one missed beat does not "
                    + "lose the lease")
        }
        guard worker.pollInterval > .zero else {
            throw UsageError("worker.poll_interval must be positive; expected \(DurationText.accepted)")
        }
        return worker
    }

    /// Coordinator settings from the file, then the flags.
    package func coordinatorConfiguration(untilIdle: Bool) throws -> CoordinatorConfiguration {
        var coordinator = CoordinatorConfiguration()
        override(
            &coordinator,
            durations: [
                "coordinator.tick_interval": \.tickInterval, "coordinator.rescue_interval": \.rescueInterval,
                "coordinator.prune_interval": \.pruneInterval, "coordinator.keep_finished": \.keepFinished,
                "coordinator.keep_dead": \.keepDead, "worker.lease": \.lease,
            ])
        override(&coordinator, integers: ["coordinator.prune_batch": \.pruneBatch])
        coordinator.untilIdle = untilIdle
        guard coordinator.tickInterval > .zero else {
            throw UsageError("coordinator.tick_interval must be positive; expected \(DurationText.accepted)")
        }
        return coordinator
    }
}

extension Configuration {
    /// Sets each field of `value` whose key the file gives (`"worker.lease": \.lease`); the
    /// others keep their defaults.
    fileprivate func override<Root>(
        _ value: inout Root, durations: KeyValuePairs<String, WritableKeyPath<Root, Duration>>
    ) {
        for (key, field) in durations { if let setting = duration(key) { value[keyPath: field] = setting } }
    }

    /// The same for whole-number settings.
    fileprivate func override<Root>(_ value: inout Root, integers: KeyValuePairs<String, WritableKeyPath<Root, Int>>) {
        for (key, field) in integers { if let setting = integer(key) { value[keyPath: field] = setting } }
    }
}
