import Foundation
import Postgres
import Retention

/// The leader's retention duties, set-based: enqueue a task per due (account, entity
/// type) and (account, blob store) and advance their next check; announce upcoming
/// deletions once per (account, type, day).
public struct RetentionSchedule: Sendable {
    /// The channel upcoming-deletion notices are sent on (JSON payload per notice).
    public static let noticeChannel = "lethe_notices"

    public var orphanInterval: Duration
    public var maxAttempts: Int

    public init(orphanInterval: Duration, maxAttempts: Int) {
        self.orphanInterval = orphanInterval
        self.maxAttempts = maxAttempts
    }

    /// $1 batch, $2 max attempts, $3 orphan GC interval (ms). One task per lane of the
    /// type (`lanes`). Blocked pairs are not
    /// enqueued but their check still advances (SQL shows why in lethe.retention_status);
    /// changes that unblock them bring the check forward (lethe.runs_due_now).
    static let enqueueDue = """
        WITH due AS MATERIALIZED (
            SELECT r.kind, r.account_id, r.subject FROM lethe.retention_runs r
            WHERE r.next_run_at <= now()
            ORDER BY r.next_run_at
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        ), checked AS MATERIALIZED (
            SELECT d.kind, d.account_id, d.subject,
                   coalesce(CASE d.kind WHEN '\(TaskKind.retention.rawValue)' THEN s.runnable ELSE g.runnable END, false) AS runnable,
                   CASE d.kind WHEN '\(TaskKind.retention.rawValue)' THEN s.check_interval
                               ELSE $3 * interval '1 millisecond' END AS every,
                   CASE d.kind WHEN '\(TaskKind.retention.rawValue)' THEN coalesce(s.lanes, 1) ELSE 1 END AS lanes
            FROM due d
            LEFT JOIN lethe.retention_status s
                   ON d.kind = '\(TaskKind.retention.rawValue)' AND s.account_id = d.account_id AND s.entity_type = d.subject
            LEFT JOIN LATERAL (
                SELECT a.state = 'active' AND NOT a.retention_disabled AND bs.active
                       AND NOT EXISTS (SELECT 1 FROM lethe.holds h
                                       WHERE h.account_id = a.account_id AND h.entity_type IS NULL
                                         AND h.released_at IS NULL AND (h.until IS NULL OR h.until > now()))
                       AND NOT EXISTS (SELECT 1 FROM lethe.archive_settings st
                                       WHERE st.account_id = a.account_id AND st.enabled) AS runnable
                FROM lethe.accounts a JOIN lethe.blob_stores bs ON bs.name = d.subject
                WHERE a.account_id = d.account_id
            ) g ON d.kind = '\(TaskKind.orphanGC.rawValue)'
        ), inserted AS (
            INSERT INTO lethe.tasks (kind, account_id, entity_type, lane, payload, max_attempts)
            SELECT c.kind, c.account_id, c.subject, lane, '{}'::jsonb, $2
            FROM checked c CROSS JOIN LATERAL generate_series(0, c.lanes - 1) AS lane
            WHERE c.runnable
            ON CONFLICT DO NOTHING
            RETURNING 1
        ), advanced AS (
            UPDATE lethe.retention_runs r
            SET next_run_at = now() + coalesce(c.every, interval '1 hour'),
                last_checked_at = now(),
                last_enqueued_at = CASE WHEN c.runnable THEN now() ELSE r.last_enqueued_at END
            FROM checked c
            WHERE r.kind = c.kind AND r.account_id = c.account_id AND r.subject = c.subject
            RETURNING 1
        ), counted AS (
            SELECT count(*) AS n FROM inserted
        ), notified AS (
            SELECT pg_notify('\(QueueSQL.channel)', n::text) FROM counted WHERE n > 0
        )
        SELECT (SELECT count(*) FROM advanced), n, (SELECT count(*) FROM notified) FROM counted
        """

    /// Enqueues due retention and orphan GC tasks, `batch` checks at most; returns
    /// (checked, enqueued).
    @discardableResult
    public func enqueueDue(batch: Int = 10_000, on connection: Connection) throws -> (checked: Int, enqueued: Int) {
        let row = try connection.query(Self.enqueueDue, [batch, maxAttempts, orphanInterval.milliseconds])[0]
        let (checked, enqueued, _) = try row.decode((Int, Int, Int).self)
        return (checked, enqueued)
    }

    static let announce = """
        WITH fresh AS (
            INSERT INTO lethe.notices (account_id, entity_type, deletion_day, rows, earliest_at)
            SELECT u.account_id, u.entity_type, (u.earliest_at AT TIME ZONE 'UTC')::date, u.rows, u.earliest_at
            FROM lethe.upcoming_deletions u
            WHERE u.rows > 0
            ON CONFLICT (account_id, entity_type, deletion_day) DO NOTHING
            RETURNING account_id, entity_type, deletion_day, rows, earliest_at
        ), notified AS (
            SELECT pg_notify('\(noticeChannel)', json_build_object(
                       'account_id', account_id, 'entity_type', entity_type, 'deletion_day', deletion_day,
                       'rows', rows, 'earliest_at', earliest_at)::text)
            FROM fresh
        )
        SELECT count(*) FROM notified
        """

    /// Announces each upcoming (account, type, deletion day) once: a row in
    /// `lethe.notices` and a NOTIFY on `lethe_notices`. Returns how many were new.
    @discardableResult
    public func announceUpcoming(on connection: Connection) throws -> Int {
        try connection.query(Self.announce)[0].decode(Int.self, at: 0)
    }
}
