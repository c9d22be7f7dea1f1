import Foundation
import Postgres
import Retention

/// What one retention batch did.
public struct RetentionBatchResult: Sendable, Equatable {
    public enum Status: Sendable, Equatable {
        /// Rows (maybe none) were deleted.
        case deleted
        /// Retention does not run for this account and type now (suspended, disabled, no
        /// policy…): the reason, as `lethe.retention_status.blocked_reason` gives it.
        case blocked(String)
        /// A hold stops deletion.
        case held(String)
    }

    public var status: Status
    public var roots = 0
    public var blobs = 0
    /// Rows deleted per table (`app.messages`), roots included, blobs excluded.
    public var rowsByTable: [String: Int] = [:]
    public var cutoff: String?
    public var interval: String?

    public var totalRows: Int { rowsByTable.values.reduce(0, +) }
}

/// The retention batch: one transaction that locks up to `batch_size` of an account's
/// oldest expired root rows (SKIP LOCKED), deletes their children child-first (each table
/// in one statement, found through its parents up to the roots' keys), then the roots,
/// then the blobs only they referenced, and records it in `lethe.deletion_records`.
///
/// The registry lock is taken shared and the registry in force checked first
/// (`RegistryGuard`); then the account row is locked FOR SHARE, and the status read in the next statement
/// (a fresh snapshot): a hold, a policy change or a state change (which lock the row FOR
/// UPDATE) waits for the batch in flight, and a batch that waited for one sees it. The
/// transaction runs under `timeouts`. The batch is idempotent: rows already gone are
/// simply not found again.
public struct RetentionBatch: Sendable {
    public let type: CompiledEntityType
    public let blobStores: [String: CompiledBlobStore]
    public let timeouts: DeletionTimeouts
    /// The registry in force the type was compiled from (`RegistryGuard`).
    public let registryVersion: String?
    /// The unique indexes that proved the keys (`RegistryGuard`).
    public let keyProofs: [Int64]

    public init(type: CompiledEntityType, registry: CompiledRegistry, timeouts: DeletionTimeouts = .standard) {
        self.type = type
        self.blobStores = registry.blobStores
        self.timeouts = timeouts
        self.registryVersion = registry.version
        self.keyProofs = registry.keyProofs
    }

    /// Runs one batch for `account` of up to `limit` roots (the type's `batch_size` when
    /// nil; the adaptive batch size passes less); `task` and `worker` go into the deletion log.
    public func run(
        account: String, task: Int64?, worker: UUID?, limit: Int? = nil, on connection: Connection
    ) throws
        -> RetentionBatchResult
    {
        let started = ContinuousClock.now
        return try connection.withTransaction { connection in
            try timeouts.apply(on: connection)
            try RegistryGuard.check(registryVersion, proofs: keyProofs, on: connection)
            guard try Self.lockAccount(account, on: connection) else {
                return RetentionBatchResult(status: .blocked("no account \"\(account)\" in lethe.accounts"))
            }
            let policy = try connection.query(
                """
                SELECT s.runnable, s.blocked_reason, s.held, s.hold_reason, s.cutoff::text, s.effective_interval::text
                FROM lethe.retention_status s WHERE s.account_id = $1 AND s.entity_type = $2
                """, [account, type.name])
            guard let row = policy.first else {
                return RetentionBatchResult(status: .blocked("no entity type \"\(type.name)\" in lethe.entity_types"))
            }
            let (runnable, blocked, held, holdReason, cutoff, interval) = try row.decode(
                (Bool, String?, Bool, String?, String?, String?).self)
            guard runnable, let cutoff else { return RetentionBatchResult(status: .blocked(blocked ?? "not runnable")) }
            if held { return RetentionBatchResult(status: .held(holdReason ?? "held")) }

            var result = RetentionBatchResult(status: .deleted, cutoff: cutoff, interval: interval)
            let size = min(max(limit ?? type.type.batchSize, 1), type.type.batchSize)
            let roots = try connection.query(type.selectRoots, [account, cutoff, size])
            guard roots.count > 0 else { return result }

            let blobKeys = try Self.deleteTrees(
                of: type, account: account, roots: roots, into: &result, on: connection)

            // Blobs last (rows reference them): only the account's, and only if nothing references them now.
            for (storeName, candidates) in blobKeys.sorted(by: { $0.key < $1.key }) {
                guard let store = blobStores[storeName] else { continue }
                result.blobs += try connection.execute(store.deleteUnreferenced, [Array(candidates).sorted(), account])
            }

            try Self.record(
                result, account: account, entityType: type.name, task: task, worker: worker,
                duration: ContinuousClock.now - started, on: connection)
            return result
        }
    }

    /// Deletes the trees of the locked `roots` of `account` (rows of `selectRoots` or
    /// `lockArchivedRoots`: the key, then the root's blob columns) except those in `sparing`: child-first, each
    /// table in one statement found through its parents. Returns the blob keys per store that
    /// the deleted rows referenced, for the caller to delete when nothing references them.
    ///
    /// `archive` (an archive job) restricts every statement to the rows that job archived as
    /// they are now and that nothing remaining depends on (`deleteArchived`).
    static func deleteTrees(
        of type: CompiledEntityType, account: String, roots: QueryResult, sparing: Set<String> = [],
        archive job: UUID? = nil,
        into result: inout RetentionBatchResult, on connection: Connection
    ) throws -> [String: Set<String>] {
        var blobKeys: [String: Set<String>] = [:]
        var rootKeys: [String] = []
        for row in roots {
            let key = try row.decode(String.self, at: 0)
            guard !sparing.contains(key) else { continue }
            rootKeys.append(key)
            for (index, blob) in type.root.blobs.enumerated() {
                if let blobKey = try row.decode(String?.self, at: 1 + index) {
                    blobKeys[blob.store, default: []].insert(blobKey)
                }
            }
        }
        guard !rootKeys.isEmpty else { return [:] }
        // Child-first (reverse pre-order): each table's rows under the roots, then the roots.
        for (index, table) in type.tables.enumerated().reversed() {
            let deleted: Int
            let (sql, parameters): (String, [any PostgresEncodable]) =
                if let job {
                    (type.deleteArchived(index), [rootKeys, account, job])
                } else {
                    (type.delete(index), [rootKeys, account])
                }
            if table.blobs.isEmpty {
                deleted = try connection.execute(sql, parameters)
            } else {
                let rows = try connection.query(sql, parameters)
                if index > 0 {
                    for row in rows {
                        for (column, blob) in table.blobs.enumerated() {
                            if let key = try row.decode(String?.self, at: column) {
                                blobKeys[blob.store, default: []].insert(key)
                            }
                        }
                    }
                }
                deleted = rows.count
            }
            result.rowsByTable[table.label, default: 0] += deleted
        }
        result.roots = result.rowsByTable[type.root.label] ?? 0
        return blobKeys
    }

    /// After a batch deleted rows of `account`: its other entity types and its blob stores
    /// are due for a check now, since rows that referred to what went may be eligible now.
    public static func checkOthersNow(account: String, except entityType: String, on connection: Connection) throws {
        try connection.execute(
            """
            UPDATE lethe.retention_runs SET next_run_at = now()
            WHERE account_id = $1 AND NOT (kind = '\(TaskKind.retention.rawValue)' AND subject = $2) AND next_run_at > now()
            """, [account, entityType])
    }

    /// Locks the account row FOR SHARE; false when there is no such account. Call it in its
    /// own statement before reading anything that decides what may be deleted: when it had
    /// to wait for a hold or policy change, only a later statement's snapshot sees that change
    /// (READ COMMITTED takes one per statement).
    static func lockAccount(_ account: String, on connection: Connection) throws -> Bool {
        try connection.query("SELECT 1 FROM lethe.accounts WHERE account_id = $1 FOR SHARE", [account]).count > 0
    }

    /// Appends the batch to `lethe.deletion_records` (in the batch's transaction).
    static func record(
        _ result: RetentionBatchResult, account: String, entityType: String, task: Int64?, worker: UUID?,
        archive: Int64? = nil, duration: Duration, on connection: Connection
    ) throws {
        let counts = String(
            decoding: try JSONSerialization.data(withJSONObject: result.rowsByTable, options: [.sortedKeys]),
            as: UTF8.self)
        try connection.execute(
            """
            INSERT INTO lethe.deletion_records (account_id, entity_type, task_id, worker_id, cutoff, retention,
                root_rows, total_rows, blob_rows, rows_by_table, duration_ms, archive_id)
            VALUES ($1, $2, $3, $4, $5::timestamptz, $6::interval, $7, $8, $9, $10::jsonb, $11, $12)
            """,
            [
                account, entityType, task, worker, result.cutoff, result.interval, result.roots, result.totalRows,
                result.blobs, counts,
                Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15, archive,
            ])
    }
}
