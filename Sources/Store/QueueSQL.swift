import Foundation
import Retention

/// The queue's SQL, kept together so the statements can be read (and EXPLAINed) as a set.
/// docs/queue.md explains each against the state machine.
enum QueueSQL {
    /// NOTIFY channel that wakes workers; the payload is the number of tasks enqueued.
    static let channel = "lethe_tasks"

    /// $1 kinds, $2 accounts, $3 entity types, $4 payloads (JSON text), $5 priorities,
    /// $6 run_at (NULL = now), $7 max_attempts (NULL = $8), $8 default max_attempts.
    /// One statement and one NOTIFY however many tasks; conflicts with an unfinished task
    /// of the same (kind, account, entity type) are skipped.
    static let enqueue = """
        WITH inserted AS (
            INSERT INTO lethe.tasks (kind, account_id, entity_type, payload, priority, run_at, max_attempts)
            SELECT n.kind, n.account_id, n.entity_type, n.payload::jsonb, n.priority,
                   coalesce(n.run_at, now()), coalesce(n.max_attempts, $8)
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[], $7::int[])
                 AS n(kind, account_id, entity_type, payload, priority, run_at, max_attempts)
            ON CONFLICT DO NOTHING
            RETURNING 1
        ), counted AS (
            SELECT count(*) AS n FROM inserted
        ), notified AS (
            SELECT pg_notify('\(channel)', n::text) FROM counted WHERE n > 0
        )
        SELECT n, (SELECT count(*) FROM notified) FROM counted
        """

    /// What a claim statement acknowledges on the way.
    enum Acknowledging {
        /// Nothing: $1 limit, $2 worker id, $3 lease (ms), [$4 kinds].
        case none
        /// Only successes (the common case, with a lighter update): $1 ids, $2 claims,
        /// $3 worker id, $4 limit, $5 lease (ms), [$6 kinds].
        case successes
        /// Any outcomes: $1–$6 as for `acknowledge`, $7 limit, $8 lease (ms), [$9 kinds].
        case outcomes

        var index: Int {
            switch self {
            case .none: 0
            case .successes: 1
            case .outcomes: 2
            }
        }
    }

    /// A claim statement, acknowledging the worker's finished tasks in the same statement
    /// (one round trip and one commit per worker cycle). Built once per shape.
    static func claim(kinds: Bool, acknowledging: Acknowledging) -> String {
        claimStatements[kinds ? 1 : 0][acknowledging.index]
    }

    private static let claimStatements: [[String]] = [false, true].map { kinds in
        [Acknowledging.none, .successes, .outcomes].map { buildClaim(kinds: kinds, acknowledging: $0) }
    }

    /// The parameters of one claim shape: which `$n` holds what, and the acknowledgement
    /// that runs first (if any).
    private struct ClaimParameters {
        var limit: String
        var worker: String
        var lease: String
        var kinds: String
        var acknowledgement: String?

        init(_ acknowledging: Acknowledging) {
            (limit, worker, lease, kinds, acknowledgement) =
                switch acknowledging {
                case .none: ("$1", "$2", "$3", "$4", nil)
                case .successes: ("$4", "$3", "$5", "$6", acknowledgeSuccesses)
                case .outcomes: ("$7", "$6", "$8", "$9", acknowledge)
                }
        }
    }

    private static func buildClaim(kinds: Bool, acknowledging: Acknowledging) -> String {
        let parameters = ClaimParameters(acknowledging)
        let acked = parameters.acknowledgement.map { "acked AS (\n" + $0 + "\n    RETURNING t.id\n), " } ?? ""
        return "WITH " + acked
            + claimCTEs(parameters, kindFilter: kinds ? " AND kind = ANY(\(parameters.kinds))" : "")
    }

    /// The claim: the materialized CTE locks the first due rows in claim order
    /// (tasks_claim_idx) and skips rows other workers hold; `id = ANY(ARRAY(…))` keeps the
    /// update on the primary key whatever the statistics say.
    private static func claimCTEs(_ parameters: ClaimParameters, kindFilter: String) -> String {
        """
        picked AS MATERIALIZED (
            SELECT id FROM lethe.tasks
            WHERE \(TaskEvent.claim.leaves("state")) AND run_at <= now()\(kindFilter)
            ORDER BY priority, run_at, id
            LIMIT \(parameters.limit)
            FOR UPDATE SKIP LOCKED
        ),
        claimed AS (
            UPDATE lethe.tasks t
            SET state = \(TaskEvent.claim.targetSQL), attempts = t.attempts + 1, claims = t.claims + 1, worker_id = \(parameters.worker),
                lease_expires_at = now() + \(parameters.lease) * interval '1 millisecond', started_at = now()
            WHERE t.id = ANY (ARRAY(SELECT id FROM picked))
            RETURNING t.id, t.kind, t.account_id, t.entity_type, t.attempts, t.max_attempts, t.yields, t.payload,
                      t.claims, t.priority, t.run_at
        )
        SELECT id, kind, account_id, entity_type, attempts, max_attempts, yields, payload::text, claims
        FROM claimed
        ORDER BY priority, run_at, id
        """
    }

    /// $1 ids, $2 claims, $3 worker id: `acknowledge` for successes only.
    static let acknowledgeSuccesses = """
        UPDATE lethe.tasks t
        SET state = \(TaskEvent.succeed.targetSQL), finished_at = now(), worker_id = NULL, lease_expires_at = NULL
        FROM unnest($1::bigint[], $2::bigint[]) AS o(id, claim)
        WHERE t.id = o.id AND t.claims = o.claim AND t.worker_id = $3 AND \(TaskEvent.succeed.leaves("t.state"))
        """

    /// $1 worker id, $2 lease in milliseconds, $3 ids and $4 claims the worker believes it
    /// holds. Returns the (id, claim) pairs it still holds; the others were rescued or cancelled.
    static let heartbeat = """
        WITH beat AS (
            UPDATE lethe.workers SET last_heartbeat_at = now() WHERE id = $1
        )
        UPDATE lethe.tasks t
        SET lease_expires_at = now() + $2 * interval '1 millisecond'
        FROM unnest($3::bigint[], $4::bigint[]) AS h(id, claim)
        WHERE t.id = h.id AND t.claims = h.claim AND t.worker_id = $1 AND t.state = \(StateSQL.literal(TaskState.running))
        RETURNING t.id, t.claims
        """

    /// $1 ids, $2 claims, $3 outcomes, $4 delays (ms), $5 errors, $6 worker id.
    /// Each row changes only while this worker still holds that claim (the task's claims
    /// counter only grows): a late acknowledgement after a rescue matches nothing.
    static let acknowledge = """
        UPDATE lethe.tasks t
        SET state = CASE o.outcome
                WHEN 'succeeded' THEN \(TaskEvent.succeed.targetSQL)
                WHEN 'yielded' THEN \(TaskEvent.yield.targetSQL)
                WHEN 'released' THEN \(TaskEvent.release.targetSQL)
                WHEN 'dead' THEN \(TaskEvent.failPermanently.targetSQL)
                ELSE CASE WHEN t.attempts >= t.max_attempts THEN \(TaskEvent.failLastAttempt.targetSQL)
                          ELSE \(TaskEvent.fail.targetSQL) END
            END,
            run_at = CASE WHEN o.outcome IN ('yielded', 'failed') THEN now() + o.delay_ms * interval '1 millisecond'
                          WHEN o.outcome = 'released' THEN now()
                          ELSE t.run_at END,
            attempts = CASE WHEN o.outcome IN ('yielded', 'released') THEN t.attempts - 1 ELSE t.attempts END,
            yields = t.yields + CASE WHEN o.outcome = 'yielded' THEN 1 ELSE 0 END,
            last_error = CASE WHEN o.outcome IN ('failed', 'dead') THEN o.error ELSE t.last_error END,
            finished_at = CASE
                WHEN o.outcome IN ('succeeded', 'dead') THEN now()
                WHEN o.outcome = 'failed' AND t.attempts >= t.max_attempts THEN now()
                ELSE NULL END,
            worker_id = NULL,
            lease_expires_at = NULL
        FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[])
             AS o(id, claim, outcome, delay_ms, error)
        WHERE t.id = o.id AND t.claims = o.claim AND t.worker_id = $6 AND \(TaskEvent.succeed.leaves("t.state"))
        """

    /// $1 batch size. Running tasks whose lease ran out: the attempt counts as failed and
    /// the task is due again now (dead when out of attempts).
    static let rescue = """
        UPDATE lethe.tasks t
        SET state = CASE WHEN t.attempts >= t.max_attempts THEN \(TaskEvent.rescueLastAttempt.targetSQL)
                         ELSE \(TaskEvent.rescue.targetSQL) END,
            run_at = now(),
            last_error = 'lease expired: worker ' || t.worker_id || ' stopped heartbeating during attempt '
                         || t.attempts,
            finished_at = CASE WHEN t.attempts >= t.max_attempts THEN now() END,
            worker_id = NULL,
            lease_expires_at = NULL
        WHERE t.id IN (
            SELECT id FROM lethe.tasks
            WHERE \(TaskEvent.rescue.leaves("state")) AND lease_expires_at < now()
            ORDER BY lease_expires_at, id
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        )
        RETURNING t.id
        """

    /// $1 keep succeeded/cancelled (ms), $2 keep dead (ms), $3 batch size.
    static let prune = """
        DELETE FROM lethe.tasks
        WHERE id IN (
            (SELECT id FROM lethe.tasks
             WHERE \(StateSQL.isIn("state", [TaskState.succeeded, .cancelled])) AND finished_at < now() - $1 * interval '1 millisecond'
             LIMIT $3)
            UNION ALL
            (SELECT id FROM lethe.tasks
             WHERE state = \(StateSQL.literal(TaskState.dead)) AND finished_at < now() - $2 * interval '1 millisecond'
             LIMIT $3)
        )
        """

    /// $1 keep (ms): stopped processes, and processes silent that long past their lease.
    static let pruneWorkers = """
        DELETE FROM lethe.workers
        WHERE stopped_at < now() - $1 * interval '1 millisecond'
           OR last_heartbeat_at < now() - $1 * interval '1 millisecond' - make_interval(secs => lease_seconds)
        """

    /// Nothing due, nothing running, no retry pending, no schedule or retention check due. (A task enqueued
    /// for later — available with a future run_at — does not keep `--until-idle` running.)
    /// $1: only these kinds count (NULL: all) — a worker waits only for what it can run.
    ///
    /// "Due" compares with `clock_timestamp()`, not `now()`: `now()` is when this statement's
    /// transaction began, which can be before another session's transaction began, committed
    /// and became visible to this statement's snapshot. That session's task, stamped with its
    /// own later `now()`, would look "enqueued for later" while the wake that enqueued it is
    /// already cleared: `lethe run --until-idle` then exited with an approved job's task queued.
    static let isIdle = """
        SELECT NOT EXISTS (SELECT 1 FROM lethe.tasks WHERE state = \(StateSQL.literal(TaskState.available)) AND run_at <= clock_timestamp()
                           AND ($1::text[] IS NULL OR kind = ANY($1)))
           AND NOT EXISTS (SELECT 1 FROM lethe.tasks WHERE \(StateSQL.isIn("state", [TaskState.running, .failed]))
                           AND ($1::text[] IS NULL OR kind = ANY($1)))
           AND NOT EXISTS (SELECT 1 FROM lethe.schedules WHERE enabled AND next_run_at <= clock_timestamp()
                           AND ($1::text[] IS NULL OR kind = ANY($1)))
           AND NOT EXISTS (SELECT 1 FROM lethe.retention_runs WHERE next_run_at <= clock_timestamp()
                           AND ($1::text[] IS NULL OR kind = ANY($1)))
           AND ($1::text[] IS NOT NULL AND NOT '\(TaskKind.archive.rawValue)' = ANY($1)
                OR NOT EXISTS (SELECT 1 FROM lethe.archive_jobs WHERE wake_at <= clock_timestamp()
                                   AND state <> \(StateSQL.literal(ArchiveJobState.deleted)))
                   AND NOT EXISTS (SELECT 1 FROM lethe.archive_settings WHERE enabled AND next_run_at <= clock_timestamp()))
        """

    /// $1 batch size. Enqueues a task for each due schedule (skipping those whose previous
    /// task is unfinished) and moves each schedule's next run past now.
    static let enqueueDueSchedules = """
        WITH due AS (
            SELECT id FROM lethe.schedules
            WHERE enabled AND next_run_at <= now()
            ORDER BY next_run_at
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        ), advanced AS (
            UPDATE lethe.schedules s
            SET next_run_at = CASE WHEN s.next_run_at + s.every > now() THEN s.next_run_at + s.every
                                   ELSE now() + s.every END,
                last_enqueued_at = now()
            FROM due
            WHERE s.id = due.id
            RETURNING s.kind, s.account_id, s.entity_type, s.priority, s.payload
        ), inserted AS (
            INSERT INTO lethe.tasks (kind, account_id, entity_type, priority, payload)
            SELECT kind, account_id, entity_type, priority, payload FROM advanced
            ON CONFLICT DO NOTHING
            RETURNING 1
        ), counted AS (
            SELECT (SELECT count(*) FROM advanced) AS due, (SELECT count(*) FROM inserted) AS enqueued
        ), notified AS (
            SELECT pg_notify('\(channel)', enqueued::text) FROM counted WHERE enqueued > 0
        )
        SELECT due, enqueued, (SELECT count(*) FROM notified) FROM counted
        """

    static let taskColumns = """
        id, kind, account_id, entity_type, state, priority, run_at, attempts, max_attempts, yields, worker_id,
        last_error, created_at, started_at, finished_at
        """
}
