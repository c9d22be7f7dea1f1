import Foundation
import Postgres
import Retention

/// Orphan blob GC for one account and blob store. A blob nothing references is first
/// recorded in `lethe.orphan_blobs` (first seen now); once it has stayed unreferenced for
/// longer than the store's grace it is deleted, `batch_size` per transaction and at most
/// `cap_per_run` per run. A blob referenced again is forgotten, so its grace restarts.
public struct OrphanCollector: Sendable {
    public let store: CompiledBlobStore
    /// Lock and statement timeouts of each marking and deleting transaction.
    public let timeouts: DeletionTimeouts
    /// The registry in force the store was compiled from (`RegistryGuard`).
    public let registryVersion: String?

    public init(store: CompiledBlobStore, timeouts: DeletionTimeouts = .standard, registryVersion: String? = nil) {
        self.store = store
        self.timeouts = timeouts
        self.registryVersion = registryVersion
    }

    /// Whether orphan GC may delete the account's blobs now: an active account, retention
    /// not disabled, no account-wide hold, archiving off (with archiving on, the archive job
    /// archives orphaned blobs before it deletes them). Nil when it may, else why not.
    public func blockedReason(account: String, on connection: Connection) throws -> String? {
        let rows = try connection.query(
            """
            SELECT a.state, a.retention_disabled,
                   EXISTS (SELECT 1 FROM lethe.holds h WHERE h.account_id = a.account_id AND h.entity_type IS NULL
                           AND h.released_at IS NULL AND (h.until IS NULL OR h.until > now())),
                   EXISTS (SELECT 1 FROM lethe.archive_settings s WHERE s.account_id = a.account_id AND s.enabled)
            FROM lethe.accounts a WHERE a.account_id = $1
            """, [account])
        guard let row = rows.first else { return "no account \"\(account)\" in lethe.accounts" }
        let (state, disabled, held, archiving) = try row.decode((String, Bool, Bool, Bool).self)
        if state != "active" { return "account \(state)" }
        if disabled { return "retention disabled for the account by an operator" }
        if held { return "account on hold" }
        if archiving { return Self.archivingReason }
        return nil
    }

    /// Why orphan GC leaves an archiving account alone.
    public static let archivingReason =
        "archiving on: the archive job archives the account's orphaned blobs before deleting them"

    /// Records the account's unreferenced blobs and forgets those referenced again.
    /// Returns (newly marked, forgotten).
    @discardableResult
    public func mark(account: String, on connection: Connection) throws -> (marked: Int, forgotten: Int) {
        try connection.withTransaction { connection in
            try timeouts.apply(on: connection)
            let row = try connection.query(store.mark, [store.store.name, account])[0]
            return try row.decode((Int, Int).self)
        }
    }

    /// Deletes one batch of blobs past their grace (at most `limit`); returns (deleted,
    /// candidates taken). Fewer taken than `limit` means nothing more is due. Locks the
    /// account FOR SHARE first and checks it in a later statement, so a hold or state change
    /// it waited for stops the batch; runs under `timeouts`.
    public func collectBatch(
        account: String, limit: Int, task: Int64?, worker: UUID?, on connection: Connection
    ) throws -> (deleted: Int, taken: Int) {
        let started = ContinuousClock.now
        return try connection.withTransaction { connection in
            try timeouts.apply(on: connection)
            try RegistryGuard.check(registryVersion, on: connection)
            guard try RetentionBatch.lockAccount(account, on: connection) else {
                throw OrphanCollectionBlocked(reason: "no account \"\(account)\" in lethe.accounts")
            }
            if let reason = try blockedReason(account: account, on: connection) {
                throw OrphanCollectionBlocked(reason: reason)
            }
            let row = try connection.query(
                store.collect, [store.store.name, account, store.store.grace.milliseconds, limit])[0]
            let (deleted, taken) = try row.decode((Int, Int).self)
            if deleted > 0 {
                var result = RetentionBatchResult(status: .deleted)
                result.blobs = deleted
                try RetentionBatch.record(
                    result, account: account, entityType: "orphan_gc:\(store.store.name)", task: task, worker: worker,
                    duration: ContinuousClock.now - started, on: connection)
            }
            return (deleted, taken)
        }
    }
}

/// Orphan GC may not run for the account now (the reason says why).
public struct OrphanCollectionBlocked: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { "orphan GC blocked: \(reason)" }
}
