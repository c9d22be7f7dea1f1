import Coordinator
import Retention
import Store
import Worker

extension CommandContext {
    /// The queue with the configured default attempts.
    func taskQueue() -> TaskQueue {
        TaskQueue(defaultMaxAttempts: configuration.integer("queue.max_attempts") ?? 20)
    }

    /// Worker settings from the file, then the flags.
    func workerConfiguration(concurrency: Int?, untilIdle: Bool, pollOnly: Bool) throws -> WorkerConfiguration {
        var worker = WorkerConfiguration()
        worker.concurrency = concurrency ?? configuration.integer("worker.concurrency") ?? worker.concurrency
        worker.claimBatch = configuration.integer("worker.claim_batch") ?? worker.claimBatch
        worker.claimLoops = configuration.integer("worker.claim_loops") ?? worker.claimLoops
        worker.lease = configuration.duration("worker.lease") ?? worker.lease
        worker.heartbeatInterval = configuration.duration("worker.heartbeat_interval") ?? worker.heartbeatInterval
        worker.rescueInterval = configuration.duration("worker.rescue_interval") ?? worker.rescueInterval
        worker.pollInterval = configuration.duration("worker.poll_interval") ?? worker.pollInterval
        worker.listen = !pollOnly && (configuration.boolean("worker.listen") ?? true)
        worker.taskBudget = configuration.duration("worker.task_budget") ?? worker.taskBudget
        worker.shutdownGrace = configuration.duration("worker.shutdown_grace") ?? worker.shutdownGrace
        worker.untilIdle = untilIdle
        let base = configuration.duration("queue.retry_base") ?? worker.retry.base
        let maximum = configuration.duration("queue.retry_max") ?? worker.retry.maximum
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
    func coordinatorConfiguration(untilIdle: Bool) throws -> CoordinatorConfiguration {
        var coordinator = CoordinatorConfiguration()
        coordinator.tickInterval = configuration.duration("coordinator.tick_interval") ?? coordinator.tickInterval
        coordinator.rescueInterval = configuration.duration("coordinator.rescue_interval") ?? coordinator.rescueInterval
        coordinator.pruneInterval = configuration.duration("coordinator.prune_interval") ?? coordinator.pruneInterval
        coordinator.keepFinished = configuration.duration("coordinator.keep_finished") ?? coordinator.keepFinished
        coordinator.keepDead = configuration.duration("coordinator.keep_dead") ?? coordinator.keepDead
        coordinator.pruneBatch = configuration.integer("coordinator.prune_batch") ?? coordinator.pruneBatch
        coordinator.lease = configuration.duration("worker.lease") ?? coordinator.lease
        coordinator.untilIdle = untilIdle
        guard coordinator.tickInterval > .zero else {
            throw UsageError("coordinator.tick_interval must be positive; expected \(DurationText.accepted)")
        }
        return coordinator
    }
}
