import Foundation
import Postgres
import Retention

/// How far an archive job's deletion got for one entity type or blob store.
public enum DeletionProgress: Sendable, Equatable {
    /// Batches committed up to this manifest key; the next starts after it.
    case after(String)
    case done
}

/// What one deletion batch of an archived job did.
public struct ArchiveDeletionBatch: Sendable {
    public enum Status: Sendable, Equatable {
        /// Rows (maybe none) were deleted; `nextAfter` is the cursor for the next batch (nil: the type is done).
        case deleted(nextAfter: String?)
        /// Deletion stops for now: a hold, or the policy no longer allows it (the reason).
        case stopped(String)
    }
    public var status: Status
    public var result: RetentionBatchResult
}

extension ArchiveJobs {
    /// Marks the job and its files `deleting` (idempotent).
    public func beginDeletion(_ job: ArchiveJob, on connection: Connection) throws {
        try connection.execute(
            """
            UPDATE lethe.archive_jobs SET state = \(ArchiveJobEvent.beginDeletion.targetSQL), note = NULL
            WHERE job_id = $1 AND \(ArchiveJobEvent.beginDeletion.leaves("state"))
            """, [job.id])
        try connection.execute(
            """
            UPDATE lethe.archive_files SET status = \(ArchiveFileEvent.beginDeletion.targetSQL), error = NULL,
                updated_at = now()
            WHERE job_id = $1 AND \(ArchiveFileEvent.beginDeletion.leaves("status"))
            """, [job.id])
    }

    /// Deletes one batch of the job's roots of `type` (keys after `after`, in key order): in
    /// one transaction, locks those still eligible under the policy now, spares the roots
    /// under which anything is new or changed since it was archived, and deletes the rest
    /// child-first with the blobs only they referenced and that were archived. Recorded in
    /// the deletion log with the archive file. Like a retention batch, it locks the account
    /// FOR SHARE before it reads the status (in a later statement), under `timeouts`.
    public func deleteBatch(
        _ job: ArchiveJob, type: CompiledEntityType, after: String?, archive: Int64, task: Int64?, worker: UUID?,
        on connection: Connection
    ) throws -> ArchiveDeletionBatch {
        let started = ContinuousClock.now
        return try connection.withTransaction { connection in
            try timeouts.apply(on: connection)
            try RegistryGuard.check(registry.version, proofs: registry.keyProofs, on: connection)
            guard try RetentionBatch.lockAccount(job.accountID, on: connection) else {
                return ArchiveDeletionBatch(
                    status: .stopped("account \(job.accountID) is gone"), result: .init(status: .deleted))
            }
            // The keys first: a type of which the job archived nothing is done, whatever its
            // policy says now (an account on a tier without an interval for every type has
            // nothing of the others in the manifest, and must not stop the job on them).
            let keys = try connection.query(
                """
                SELECT row_key FROM lethe.archive_manifest
                WHERE job_id = $1 AND entity_type = $2 AND table_index = 0 AND ($3::text IS NULL OR row_key > $3)
                ORDER BY row_key LIMIT $4
                """, [job.id, type.name, after, type.type.batchSize]
            ).map { try $0.decode(String.self, at: 0) }
            guard let last = keys.last else {
                try recordProgress(job, of: type.name, from: after, next: nil, spared: 0, on: connection)
                return ArchiveDeletionBatch(status: .deleted(nextAfter: nil), result: .init(status: .deleted))
            }
            // A new statement after the lock: it sees a hold or policy change the lock waited for.
            guard
                let status = try connection.query(
                    """
                    SELECT s.policy_runnable, s.blocked_reason, s.held, s.hold_reason, s.cutoff::text, s.effective_interval::text
                    FROM lethe.retention_status s WHERE s.account_id = $1 AND s.entity_type = $2
                    """, [job.accountID, type.name]
                ).first
            else {
                return ArchiveDeletionBatch(
                    status: .stopped("entity type \(type.name) is not synced"), result: .init(status: .deleted))
            }
            let (runnable, blocked, held, holdReason, cutoff, interval) = try status.decode(
                (Bool, String?, Bool, String?, String?, String?).self)
            var result = RetentionBatchResult(status: .deleted, cutoff: cutoff, interval: interval)
            if held {
                return ArchiveDeletionBatch(status: .stopped("held: \(holdReason ?? "legal hold")"), result: result)
            }
            guard runnable, let cutoff else {
                return ArchiveDeletionBatch(status: .stopped(blocked ?? "retention does not run"), result: result)
            }

            let roots = try connection.query(type.lockArchivedRoots, [job.accountID, cutoff, keys])
            let locked = try roots.map { try $0.decode(String.self, at: 0) }
            var spared = Set<String>()
            if !locked.isEmpty {
                for index in type.tables.indices {
                    for row in try connection.query(
                        type.changedRoots(index, blobStores: registry.blobStores), [locked, job.id])
                    {
                        spared.insert(try row.decode(String.self, at: 0))
                    }
                }
            }
            let blobKeys = try RetentionBatch.deleteTrees(
                of: type, account: job.accountID, roots: roots, sparing: spared, archive: job.id, into: &result,
                on: connection)
            for (storeName, candidates) in blobKeys.sorted(by: { $0.key < $1.key }) {
                guard let store = registry.blobStores[storeName] else { continue }
                result.blobs += try connection.execute(
                    store.deleteArchived, [Array(candidates).sorted(), job.accountID, job.id])
            }
            if result.totalRows > 0 || result.blobs > 0 {
                try RetentionBatch.record(
                    result, account: job.accountID, entityType: type.name, task: task, worker: worker, archive: archive,
                    duration: ContinuousClock.now - started, on: connection)
            }
            let next = keys.count < type.type.batchSize ? nil : last
            try recordProgress(job, of: type.name, from: after, next: next, spared: spared.count, on: connection)
            return ArchiveDeletionBatch(status: .deleted(nextAfter: next), result: result)
        }
    }

    /// Deletes one batch of the job's archived blobs of `store` (after `after`, in key order)
    /// that nothing references now and that are as archived: the orphans the job took, and
    /// any a deleted row left behind. Returns the count and the next cursor (nil: done), or
    /// why deletion stops (a hold, an account no longer active).
    public func deleteBlobBatch(
        _ job: ArchiveJob, store: CompiledBlobStore, after: String?, archive: Int64, task: Int64?, worker: UUID?,
        on connection: Connection
    ) throws -> (deleted: Int, nextAfter: String?, stopped: String?) {
        let started = ContinuousClock.now
        return try connection.withTransaction { connection in
            try timeouts.apply(on: connection)
            try RegistryGuard.check(registry.version, proofs: registry.keyProofs, on: connection)
            guard try RetentionBatch.lockAccount(job.accountID, on: connection) else {
                return (0, nil, "account \(job.accountID) is gone")
            }
            // A new statement after the lock: it sees a hold or state change the lock waited for.
            let row = try connection.query(
                """
                SELECT a.state, a.retention_disabled,
                       EXISTS (SELECT 1 FROM lethe.holds h WHERE h.account_id = a.account_id AND h.entity_type IS NULL
                               AND h.released_at IS NULL AND (h.until IS NULL OR h.until > now()))
                FROM lethe.accounts a WHERE a.account_id = $1
                """, [job.accountID]
            ).first
            guard let row else { return (0, nil, "account \(job.accountID) is gone") }
            let (state, disabled, held) = try row.decode((String, Bool, Bool).self)
            if state != "active" { return (0, nil, "account \(state)") }
            if disabled { return (0, nil, "retention disabled for the account by an operator") }
            if held { return (0, nil, "account on hold") }
            let batch = store.store.batchSize
            let keys = try connection.query(
                """
                SELECT blob_key FROM lethe.archive_manifest_blobs
                WHERE job_id = $1 AND store = $2 AND row_hash IS NOT NULL AND ($3::text IS NULL OR blob_key > $3)
                ORDER BY blob_key LIMIT $4
                """, [job.id, store.store.name, after, batch]
            ).map { try $0.decode(String.self, at: 0) }
            guard let last = keys.last else {
                try recordProgress(
                    job, of: Self.blobProgressKey(store), from: after, next: nil, spared: 0, on: connection)
                return (0, nil, nil)
            }
            let deleted = try connection.execute(store.deleteArchived, [keys, job.accountID, job.id])
            try connection.execute(
                "DELETE FROM lethe.orphan_blobs WHERE store = $1 AND account_id = $2 AND blob_key = ANY($3::text[])",
                [store.store.name, job.accountID, keys])
            if deleted > 0 {
                var result = RetentionBatchResult(status: .deleted)
                result.blobs = deleted
                try RetentionBatch.record(
                    result, account: job.accountID, entityType: Self.orphanCounts(store), task: task, worker: worker,
                    archive: archive, duration: ContinuousClock.now - started, on: connection)
            }
            let next = keys.count < batch ? nil : last
            try recordProgress(job, of: Self.blobProgressKey(store), from: after, next: next, spared: 0, on: connection)
            return (deleted, next, nil)
        }
    }

    /// Where the job's deletion stands: per entity type (or `blobProgressKey`), the last
    /// manifest key a committed batch handled, or `.done`. Absent: not started.
    public func deletionProgress(_ job: ArchiveJob, on connection: Connection) throws -> [String: DeletionProgress] {
        var progress: [String: DeletionProgress] = [:]
        for row in try connection.query(
            """
            SELECT c.key, CASE WHEN jsonb_typeof(c.value) = 'string' THEN c.value #>> '{}' END
            FROM lethe.archive_jobs j, jsonb_each(j.delete_cursor) c WHERE j.job_id = $1
            """, [job.id])
        {
            let (key, after) = try row.decode((String, String?).self)
            progress[key] = after.map(DeletionProgress.after) ?? .done
        }
        return progress
    }

    /// The key of a blob store's batches in the deletion progress.
    public static func blobProgressKey(_ store: CompiledBlobStore) -> String { "blobs:\(store.store.name)" }

    /// In a deletion batch's transaction: `key` is done up to `next` (nil: done), and
    /// `spared` more roots were kept — only if the progress is still `from`, the cursor the
    /// batch started after. A batch that commits is never walked again: a worker that lost its
    /// lease and walks a batch another already committed (with a row put back identical since,
    /// which would match its archived hash) finds the cursor moved, and its whole batch rolls
    /// back with `ArchiveDeletionMoved`.
    private func recordProgress(
        _ job: ArchiveJob, of key: String, from: String?, next: String?, spared: Int, on connection: Connection
    ) throws {
        let updated = try connection.execute(
            """
            UPDATE lethe.archive_jobs
            SET delete_cursor = delete_cursor || jsonb_build_object($2::text, coalesce(to_jsonb($3::text), 'true'::jsonb)),
                spared_roots = spared_roots + $4
            WHERE job_id = $1 AND (delete_cursor -> $2::text) IS NOT DISTINCT FROM to_jsonb($5::text)
            """, [job.id, key, next, spared, from])
        guard updated == 1 else { throw ArchiveDeletionMoved(job: job.id, key: key, from: from) }
    }

    /// Every batch ran: the job and its files are `deleted`; the note says how many roots
    /// were kept (changed since archived), and is returned. One transaction, the job first:
    /// its files change only with it (a worker that lost its lease and pauses the same job
    /// meanwhile waits for the job row, then finds it `deleted` and changes nothing).
    @discardableResult
    public func recordDeleted(_ job: ArchiveJob, on connection: Connection) throws -> String? {
        let moved = try movingJobFirst(on: connection) { connection in
            try connection.query(
                """
                UPDATE lethe.archive_jobs SET state = \(ArchiveJobEvent.finishDeletion.targetSQL), deleted_at = now(), wake_at = NULL,
                    note = CASE WHEN spared_roots > 0
                                THEN 'kept ' || spared_roots || ' root rows that changed since they were archived (next cycle)' END
                WHERE job_id = $1 AND \(ArchiveJobEvent.finishDeletion.leaves("state")) RETURNING note
                """, [job.id]
            ).first
        } files: { connection in
            try connection.execute(
                """
                UPDATE lethe.archive_files SET status = \(ArchiveFileEvent.finishDeletion.targetSQL), deleted_at = now(),
                    updated_at = now()
                WHERE job_id = $1 AND \(ArchiveFileEvent.finishDeletion.leaves("status"))
                """, [job.id])
        }
        return try moved?.decode(String?.self, at: 0) ?? nil
    }

    /// Deletion stopped (a hold, a policy change): back to `uploaded`, waiting; `note` says why.
    /// One transaction, the job first, as `recordDeleted`: false (nothing changed) when the
    /// job is no longer deleting.
    @discardableResult
    public func pauseDeletion(_ job: ArchiveJob, note: String, on connection: Connection) throws -> Bool {
        try movingJobFirst(on: connection) { connection in
            try connection.execute(
                "UPDATE lethe.archive_jobs SET state = \(ArchiveJobEvent.pauseDeletion.targetSQL), note = $2 WHERE job_id = $1 AND \(ArchiveJobEvent.pauseDeletion.leaves("state"))",
                [job.id, note]) == 1 ? () : nil
        } files: { connection in
            try connection.execute(
                "UPDATE lethe.archive_files SET status = \(Self.heldStatus(ArchiveFileEvent.pauseDeletion(downloaded:))), updated_at = now() WHERE job_id = $1 AND \(ArchiveFileEvent.pauseDeletion(downloaded: false).leaves("status"))",
                [job.id])
        } != nil
    }

    /// A deletion failed: the files are `delete_failed` with the error until the retry.
    public func recordDeleteFailure(_ job: ArchiveJob, error: String, on connection: Connection) throws {
        try connection.execute(
            """
            UPDATE lethe.archive_files SET status = \(ArchiveFileEvent.failDeletion.targetSQL), error = $2, attempts = attempts + 1, updated_at = now()
            WHERE job_id = $1 AND \(ArchiveFileEvent.failDeletion.leaves("status"))
            """, [job.id, error])
        try connection.execute(ArchiveJobs.retryLater, [job.id])
    }
}

/// A deletion batch found its job's progress moved past the cursor it started after (another
/// worker committed that batch): nothing of it is kept.
public struct ArchiveDeletionMoved: Error, CustomStringConvertible {
    public var job: UUID
    public var key: String
    public var from: String?
    public var description: String {
        "archive job \(job): deletion of \(key) after \(from.map { "key \($0)" } ?? "the start") was committed by "
            + "another worker; this batch was rolled back"
    }
}
