import Foundation
import LetheMetrics
import Logging
import Postgres
import Retention
import Store

/// The `orphan_gc` task (one per account × blob store): records the account's
/// unreferenced blobs, then deletes those unreferenced for longer than the store's grace,
/// `batch_size` per transaction and at most `cap_per_run` per run.
public struct OrphanGCHandler: TaskHandler {
    public let kind = TaskKind.orphanGC
    let registry: CompiledRegistry
    let timeouts: DeletionTimeouts

    /// `timeouts` bound each transaction's lock waits and statements (a timeout fails the
    /// attempt, which retries with backoff).
    public init(registry: CompiledRegistry, timeouts: DeletionTimeouts = .standard) {
        self.registry = registry
        self.timeouts = timeouts
    }

    public func run(_ task: ClaimedTask, context: TaskContext) async throws -> TaskProgress {
        guard let account = task.accountID else { throw PermanentTaskFailure("an orphan_gc task needs an account") }
        guard let name = task.entityType, let store = registry.blobStores[name] else {
            throw UnknownEntityType(name: task.entityType ?? "(none)", known: registry.blobStores.keys.sorted())
        }
        let collector = OrphanCollector(store: store, timeouts: timeouts, registryVersion: registry.version)
        let (id, worker) = (task.id, context.workerID)
        let blocked = try await context.database.run { connection -> String? in
            if let reason = try collector.blockedReason(account: account, on: connection) { return reason }
            try collector.mark(account: account, on: connection)
            return nil
        }
        if let blocked {
            context.logger.info("orphan GC not run: \(blocked)")
            return .done
        }
        var deleted = 0
        while deleted < store.store.capPerRun {
            if context.leaseLost { throw CancellationError() }
            let limit = min(store.store.batchSize, store.store.capPerRun - deleted)
            let outcome: (deleted: Int, taken: Int)
            let started = ContinuousClock.now
            do {
                outcome = try await context.database.run { connection in
                    try collector.collectBatch(account: account, limit: limit, task: id, worker: worker, on: connection)
                }
            } catch let blocked as OrphanCollectionBlocked {
                context.logger.info("orphan GC stopped: \(blocked.reason)")
                return .done
            }
            LetheMetric.batchDuration.observe(.now - started, name)
            deleted += outcome.deleted
            context.recordDeleted(rows: outcome.deleted, entityType: name)
            if outcome.taken < limit { return .done }
            // One slice per run: the cap then counts exactly, and the rest waits for the next run.
            if context.shouldYield {
                context.logger.info("orphan GC used its budget after \(deleted) blobs; the rest waits for the next run")
                return .done
            }
        }
        context.logger.info("orphan GC reached cap_per_run (\(store.store.capPerRun)) for this run")
        return .done
    }
}
