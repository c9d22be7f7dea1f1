import Foundation
import LetheMetrics
import Logging
import Postgres
import Retention
import Store

/// The `retention` task (one per account × entity type): batches of expired rows deleted
/// until none are left, the slice's budget is spent or `maxBatches` ran; then it yields to
/// the back of the queue so one huge tenant never starves the others.
public struct RetentionHandler: TaskHandler {
    public let kind = TaskKind.retention
    let registry: CompiledRegistry
    let maxBatches: Int
    let timeouts: DeletionTimeouts
    let monitor: HealthMonitor?
    let sizer: BatchSizer?

    /// `timeouts` bound each batch's lock waits and statements: one that runs out fails the
    /// attempt, which retries with backoff. Before each batch `monitor` (when given) says
    /// whether the database's health allows it; `sizer` (when given) sizes it. Both are the
    /// worker process's, shared across registry reloads.
    public init(
        registry: CompiledRegistry, maxBatches: Int, timeouts: DeletionTimeouts = .standard,
        monitor: HealthMonitor? = nil, sizer: BatchSizer? = nil
    ) {
        self.registry = registry
        self.maxBatches = max(maxBatches, 1)
        self.timeouts = timeouts
        self.monitor = monitor
        self.sizer = sizer
    }

    public func run(_ task: ClaimedTask, context: TaskContext) async throws -> TaskProgress {
        guard let account = task.accountID else { throw PermanentTaskFailure("a retention task needs an account") }
        guard let name = task.entityType, let type = registry.entityTypes[name] else {
            // Not permanent: during a rollout another worker (or this one, restarted) may know it.
            throw UnknownEntityType(name: task.entityType ?? "(none)", known: registry.entityTypes.keys.sorted())
        }
        let (progress, deleted) = try await batches(type, account: account, task: task, context: context)
        if deleted > 0 {
            // Rows that referred to what went may be eligible now (a person once its last
            // conversation is gone): the account's other types are checked again at once.
            try await context.database.run { connection in
                try RetentionBatch.checkOthersNow(account: account, except: name, on: connection)
            }
        }
        return progress
    }

    /// Runs batches until none is left, the budget is spent or `maxBatches` ran; returns the
    /// progress and the rows deleted.
    private func batches(
        _ type: CompiledEntityType, account: String, task: ClaimedTask, context: TaskContext
    ) async throws -> (TaskProgress, Int) {
        let batch = RetentionBatch(type: type, registry: registry, timeouts: timeouts)
        let (id, worker) = (task.id, context.workerID)
        var deleted = 0
        for _ in 0..<maxBatches {
            if context.leaseLost { throw CancellationError() }
            let sized = sizer?.size(account: account, type: type.type) ?? type.type.batchSize
            guard let pace = try await pace(type, limit: sized, context: context) else { return (.more, deleted) }
            let limit = if case .floor(let rows) = pace { rows } else { sized }
            LetheMetric.batchSize.set(Double(limit), type.name)
            let started = ContinuousClock.now
            let result = try await context.database.run { connection in
                try batch.run(account: account, task: id, worker: worker, limit: limit, on: connection)
            }
            let took = ContinuousClock.now - started
            LetheMetric.batchDuration.observe(took, type.name)
            switch result.status {
            case .blocked(let reason):
                context.logger.info("retention not run: \(reason)")
                return (.done, deleted)
            case .held(let reason):
                context.logger.info("retention held: \(reason)")
                return (.done, deleted)
            case .deleted:
                deleted += result.totalRows
                context.recordDeleted(rows: result.totalRows, entityType: type.name)
                // A throttled batch is the floor's size, not the sizer's: it teaches the sizer nothing.
                if pace == .full {
                    sizer?.record(account: account, type: type.type, rows: result.roots, duration: took)
                }
            }
            if result.roots < limit { return (.done, deleted) }  // nothing more expired
            if context.shouldYield { break }
        }
        if deleted > 0 { context.logger.debug("deleted \(deleted) rows; yielding with more to do") }
        return (.more, deleted)
    }

    /// How the next batch may run: at its full size, or throttled to at most `rows` roots.
    enum Pace: Equatable {
        case full
        case floor(rows: Int)
    }

    /// Waits while a health signal is over its limit: with `throttle.floor_rate` 0 until the
    /// pressure goes, else until the process's floor allows the next (small) batch. Nil when
    /// the slice must yield first (budget spent, shutdown): the task goes to the back of the
    /// queue and checks again.
    private func pace(_ type: CompiledEntityType, limit: Int, context: TaskContext) async throws -> Pace? {
        guard let monitor else { return .full }
        let step = min(monitor.settings.checkInterval, .seconds(1))
        var waitedFor: Set<ThrottleReason> = []
        while true {
            let causes = try await context.database.run { try monitor.causes(for: type, on: $0) }
            if causes.isEmpty { return .full }
            for cause in causes where waitedFor.insert(cause.reason).inserted {
                LetheMetric.throttledWaits.increment(cause.reason.rawValue)
                context.logger.debug(
                    "retention batch \(monitor.settings.floorRate > 0 ? "slowed" : "paused"): \(cause.description)")
            }
            if context.shouldYield { return nil }
            if monitor.settings.floorRate > 0 {
                let (rows, start) = monitor.reserveFloor(upTo: limit)
                // The pressure may go while this slot waits its turn: then at once at full size.
                while ContinuousClock.now < start, !context.shouldYield, !monitor.reasons.isEmpty {
                    try await Task.sleep(for: min(start - .now, step, max(context.deadline - .now, .milliseconds(10))))
                }
                if context.leaseLost { throw CancellationError() }
                if monitor.reasons.isEmpty { return .full }
                return context.shouldYield ? nil : .floor(rows: rows)
            }
            // Short steps, so a shutdown or the end of the budget is noticed within one.
            let waitUntil = ContinuousClock.now + monitor.settings.checkInterval
            while ContinuousClock.now < waitUntil, !context.shouldYield {
                try await Task.sleep(for: min(step, max(context.deadline - .now, .milliseconds(10))))
            }
            if context.leaseLost { throw CancellationError() }
        }
    }
}

/// A task names an entity type this worker's configuration does not have.
struct UnknownEntityType: Error, CustomStringConvertible {
    var name: String
    var known: [String]
    var description: String {
        "entity type \"\(name)\" is not in the registry this worker read when it started ("
            + (known.isEmpty ? "none" : known.joined(separator: ", "))
            + "); restart it to read the registry in force"
    }
}
