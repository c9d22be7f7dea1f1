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

    /// `timeouts` bound each batch's lock waits and statements: one that runs out fails the
    /// attempt, which retries with backoff.
    public init(registry: CompiledRegistry, maxBatches: Int, timeouts: DeletionTimeouts = .standard) {
        self.registry = registry
        self.maxBatches = max(maxBatches, 1)
        self.timeouts = timeouts
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
            let started = ContinuousClock.now
            let result = try await context.database.run { connection in
                try batch.run(account: account, task: id, worker: worker, on: connection)
            }
            LetheMetric.batchDuration.observe(.now - started, type.name)
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
            }
            if result.roots < type.type.batchSize { return (.done, deleted) }  // nothing more expired
            if context.shouldYield { break }
        }
        if deleted > 0 { context.logger.debug("deleted \(deleted) rows; yielding with more to do") }
        return (.more, deleted)
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
