import Foundation
import Postgres
import Retention

/// The leader's archive duties, set-based: start each account's daily archive job at its
/// schedule hour, and enqueue an `archive` task for every account with a job to wake.
public struct ArchiveSchedule: Sendable {
    public static let kind = TaskKind.archive

    public var maxAttempts: Int

    public init(maxAttempts: Int) { self.maxAttempts = maxAttempts }

    /// $1 batch. One job per (account, schedule slot) — `UNIQUE (account_id, due_at)` makes a
    /// second leader or a retried tick harmless — then the next slot, strictly after now.
    /// Accounts that are not active only advance: nothing of theirs is archived or deleted.
    static let startDaily = """
        WITH due AS MATERIALIZED (
            SELECT s.account_id, s.schedule_hour, s.next_run_at, a.state = 'active' AS active
            FROM lethe.archive_settings s JOIN lethe.accounts a ON a.account_id = s.account_id
            WHERE s.enabled AND s.next_run_at <= now()
            ORDER BY s.next_run_at
            LIMIT $1
            FOR UPDATE OF s SKIP LOCKED
        ), created AS (
            INSERT INTO lethe.archive_jobs (account_id, due_at)
            SELECT d.account_id, d.next_run_at FROM due d WHERE d.active
            ON CONFLICT (account_id, due_at) DO NOTHING
            RETURNING 1
        ), advanced AS (
            UPDATE lethe.archive_settings s SET next_run_at = lethe.next_utc_hour(d.schedule_hour, now())
            FROM due d WHERE s.account_id = d.account_id
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM created), (SELECT count(*) FROM advanced)
        """

    /// $1 batch, $2 max attempts. One `archive` task per account whose open jobs are due to
    /// wake; their wake time is cleared only for accounts whose task now exists (inserted
    /// here, or already queued: that task takes every open job of its account).
    static let enqueueDue = """
        WITH due AS MATERIALIZED (
            SELECT DISTINCT j.account_id FROM lethe.archive_jobs j
            WHERE j.wake_at <= now() AND j.state <> 'deleted'
            LIMIT $1
        ), inserted AS (
            INSERT INTO lethe.tasks (kind, account_id, entity_type, lane, payload, max_attempts)
            SELECT '\(kind.rawValue)', d.account_id, NULL, 0, '{}'::jsonb, $2 FROM due d
            ON CONFLICT DO NOTHING
            RETURNING account_id
        ), queued AS (
            SELECT d.account_id FROM due d
            WHERE EXISTS (SELECT 1 FROM lethe.tasks t
                          WHERE t.kind = '\(kind.rawValue)' AND t.account_id = d.account_id
                            AND t.state = \(StateSQL.literal(TaskState.available)))
               OR d.account_id IN (SELECT account_id FROM inserted)
        ), woken AS (
            UPDATE lethe.archive_jobs j SET wake_at = NULL
            FROM queued q WHERE j.account_id = q.account_id AND j.wake_at <= now() AND j.state <> 'deleted'
            RETURNING 1
        ), counted AS (
            SELECT count(*) AS n FROM inserted
        ), notified AS (
            SELECT pg_notify('\(QueueSQL.channel)', n::text) FROM counted WHERE n > 0
        )
        SELECT n, (SELECT count(*) FROM woken), (SELECT count(*) FROM notified) FROM counted
        """

    /// Starts due daily jobs and enqueues the tasks of jobs to wake; returns the tasks enqueued.
    @discardableResult
    public func tick(batch: Int = 10_000, on connection: Connection) throws -> (started: Int, enqueued: Int) {
        let started = try connection.query(Self.startDaily, [batch])[0].decode(Int.self, at: 0)
        let enqueued = try connection.query(Self.enqueueDue, [batch, maxAttempts])[0].decode(Int.self, at: 0)
        return (started, enqueued)
    }
}
