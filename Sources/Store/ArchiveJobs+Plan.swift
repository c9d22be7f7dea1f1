import ArchiveFormat
import Foundation
import Postgres
import Retention

/// Planning in bounded transactions (docs/design-archive-pipeline.md): a start that records
/// the cutoffs, chunks of at most `planChunkRoots` roots with their trees, each committing
/// its manifest rows and the cursor after them, and a finish that moves the job to packing.
/// A crash loses at most the chunk in flight; no snapshot lives longer than one chunk.
extension ArchiveJobs {
    /// Where planning stands for one entity type (`archive_jobs.plan_progress`).
    struct PlanProgress: Codable, Equatable {
        /// The clock (as JSON text; nil for keep-only types) and key of the last root planned.
        var clock: String?
        var key: String?
        /// Roots recorded so far (bounded by `maxRootsPerType` for deleting types).
        var planned: Int
        var done: Bool
    }

    /// What one planning step did.
    public enum PlanStep: Sendable, Equatable {
        /// Recorded the cutoffs and which types to plan.
        case started
        /// Planned one chunk of a type: the roots recorded.
        case chunk(type: String, roots: Int)
        /// Recorded the orphaned blobs and moved the job to packing.
        case finished
        /// The job was planned already (another worker, or an earlier attempt): nothing done.
        case alreadyPlanned

        /// More steps are needed.
        public var continues: Bool {
            switch self {
            case .started, .chunk: true
            case .finished, .alreadyPlanned: false
            }
        }
    }

    /// Plans the whole job, one bounded transaction per step. Idempotent and resumable: a job
    /// already planned is left alone; a job partly planned goes on after its last chunk.
    public func plan(_ job: ArchiveJob, on connection: Connection) throws {
        while try planStep(job, on: connection).continues {}
    }

    /// One step of planning in its own transaction, with the job row locked and its state and
    /// progress read under the lock (two workers on one job take turns, never the same chunk).
    public func planStep(_ job: ArchiveJob, on connection: Connection) throws -> PlanStep {
        try connection.withTransaction { connection in
            guard
                let row = try connection.query(
                    "SELECT state, plan_progress::text FROM lethe.archive_jobs WHERE job_id = $1 FOR UPDATE", [job.id]
                ).first
            else { return .alreadyPlanned }
            let (state, progressText) = try row.decode((String, String?).self)
            guard let state = ArchiveJobState(rawValue: state), state.after(.plan) != nil else {
                return .alreadyPlanned
            }
            guard let progressText else {
                try startPlan(job, on: connection)
                return .started
            }
            var progress = try JSONDecoder().decode([String: PlanProgress].self, from: Data(progressText.utf8))
            guard let type = types.first(where: { progress[$0.name].map { !$0.done } ?? false }) else {
                try finishPlan(job, on: connection)
                return .finished
            }
            let roots = try planChunk(job, type: type, progress: &progress, on: connection)
            try connection.execute(
                "UPDATE lethe.archive_jobs SET plan_progress = $2::jsonb WHERE job_id = $1",
                [job.id, try Self.encode(progress)])
            return .chunk(type: type.name, roots: roots)
        }
    }

    /// Reads each type's policy once and records the cutoffs the whole plan uses, and which
    /// types it plans (deleting types whose policy runs; keep-only types of an active account).
    private func startPlan(_ job: ArchiveJob, on connection: Connection) throws {
        var cutoffs: [String: [String: String]] = [:]
        var progress: [String: PlanProgress] = [:]
        for type in types {
            guard
                let status = try connection.query(
                    """
                    SELECT s.policy_runnable, s.cutoff::text, s.effective_interval::text, s.account_state = 'active'
                    FROM lethe.retention_status s JOIN lethe.entity_types t ON t.name = s.entity_type
                    WHERE s.account_id = $1 AND s.entity_type = $2 AND t.active
                    """, [job.accountID, type.name]
                ).first
            else { continue }
            let (runnable, cutoff, interval, active) = try status.decode((Bool, String?, String?, Bool).self)
            if type.type.deletes {
                guard runnable, let cutoff else { continue }
                cutoffs[type.name] = ["cutoff": cutoff, "interval": interval ?? ""]
            } else {
                guard active else { continue }
                cutoffs[type.name] = ["keep_only": "every current row"]
            }
            progress[type.name] = PlanProgress(clock: nil, key: nil, planned: 0, done: false)
        }
        try connection.execute(
            """
            UPDATE lethe.archive_jobs SET cutoffs = $2::jsonb, counts = '{}'::jsonb, plan_progress = $3::jsonb
            WHERE job_id = $1
            """, [job.id, try Self.json(cutoffs), try Self.encode(progress)])
    }

    /// Records the type's next chunk of roots after the cursor, with their children and
    /// blobs, adds them to the job's counts and moves the cursor on. Returns the roots recorded.
    private func planChunk(
        _ job: ArchiveJob, type: CompiledEntityType, progress: inout [String: PlanProgress], on connection: Connection
    ) throws -> Int {
        var state = progress[type.name]!
        // Keep-only types take every current row: they are archived whole every cycle, so a
        // cap would leave their newest rows out of every archive.
        let limit = type.type.deletes ? min(planChunkRoots, maxRootsPerType - state.planned) : planChunkRoots
        guard limit > 0 else {
            state.done = true
            progress[type.name] = state
            return 0
        }
        let summary = try connection.query(
            "SELECT cutoffs -> $2::text ->> 'cutoff', coalesce(counts, '{}')::text FROM lethe.archive_jobs WHERE job_id = $1",
            [job.id, type.name])[0]
        let (cutoff, countsText) = try summary.decode((String?, String).self)
        let picked = try connection.query(
            type.planRootsChunk, [job.id, job.accountID, cutoff, limit, state.clock, state.key])[0]
        let (selected, clock, key, recorded) = try picked.decode((Int, String?, String?, [String]).self)
        var counts = try JSONDecoder().decode([String: [String: Int]].self, from: Data(countsText.utf8))
        var perTable = counts[type.name] ?? [:]
        perTable[type.tables[0].label, default: 0] += recorded.count
        for index in type.tables.indices {
            if index > 0 {
                perTable[type.tables[index].label, default: 0] += try planChildren(
                    job, type: type, index: index, roots: recorded, on: connection)
            }
            for sql in type.planBlobs(index, stores: registry.blobStores) {
                try connection.execute(sql, [job.id, job.accountID, recorded])
            }
        }
        counts[type.name] = perTable
        try connection.execute(
            "UPDATE lethe.archive_jobs SET counts = $2::jsonb WHERE job_id = $1", [job.id, try Self.json(counts)])
        if selected > 0 { (state.clock, state.key) = (clock, key) }
        state.planned += recorded.count
        state.done = selected < limit
        progress[type.name] = state
        return recorded.count
    }

    /// Records table `index`'s rows under the chunk's roots; returns how many. A keyed table's
    /// key is proven unique (`RegistryCatalog`), so its rows are new to the job unless one
    /// moved to another root between two chunks. They go in with a plain INSERT under a
    /// savepoint; only a violation of the manifest's primary key (a key the job holds) sends
    /// them again through `ON CONFLICT DO NOTHING`, which costs about a third more on every
    /// row. Any other error fails the chunk. A table named by content (identical rows share
    /// a key) always skips held keys.
    private func planChildren(
        _ job: ArchiveJob, type: CompiledEntityType, index: Int, roots: [String], on connection: Connection
    ) throws -> Int {
        let parameters: [any PostgresEncodable] = [job.id, job.accountID, roots]
        if !type.tables[index].key.isContentNamed {
            do {
                return try connection.withSavepoint("lethe_plan_children") {
                    try $0.execute(type.planChildren(index, skippingHeld: false), parameters)
                }
            } catch let error as PostgresError
                where error.sqlState == .uniqueViolation && error.constraint == "archive_manifest_pkey"
            {}
        }
        return try connection.execute(type.planChildren(index), parameters)
    }

    /// Every type is planned: records the account's orphaned blobs, moves the job to packing
    /// and puts part 1 in the backup log as `archiving`.
    private func finishPlan(_ job: ArchiveJob, on connection: Connection) throws {
        let countsText: String = try connection.query(
            "SELECT coalesce(counts, '{}')::text FROM lethe.archive_jobs WHERE job_id = $1", [job.id])[0]
            .decode(String.self, at: 0)
        var counts = try JSONDecoder().decode([String: [String: Int]].self, from: Data(countsText.utf8))
        // Orphaned blobs: orphan GC leaves archiving accounts alone, so they go from here.
        for store in registry.blobStores.values.sorted(by: { $0.store.name < $1.store.name }) {
            try connection.execute(store.mark, [store.store.name, job.accountID])
            let orphans = try connection.execute(
                store.planOrphans, [job.id, job.accountID, store.store.grace.milliseconds])
            if orphans > 0 { counts[Self.orphanCounts(store)] = ["orphaned blobs": orphans] }
        }
        try connection.execute(
            """
            UPDATE lethe.archive_jobs SET state = \(ArchiveJobEvent.plan.targetSQL), planned_at = now(), counts = $2::jsonb
            WHERE job_id = $1
            """, [job.id, try Self.json(counts)])
        try connection.execute(
            """
            INSERT INTO lethe.archive_files (job_id, account_id, part, file_name) VALUES ($1, $2, 1, $3)
            ON CONFLICT (job_id, generation, part) DO NOTHING
            """,
            [
                job.id, job.accountID,
                ArchiveLayout.fileName(account: job.accountID, job: job.id, stamp: job.stamp, part: 1),
            ])
    }

    static func encode(_ progress: [String: PlanProgress]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(progress), as: UTF8.self)
    }
}
