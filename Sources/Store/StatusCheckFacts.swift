import Foundation
import Postgres

/// What `lethe status --check` judges, read from the monitoring views only (so role
/// `lethe_monitor` can run it): dead tasks, the processes, accounts behind policy, failing
/// uploads and stuck archive jobs. Each list holds at most `sample` entries; the counts are whole.
public struct StatusCheckFacts: Sendable, Codable {
    public struct KindCount: Sendable, Codable {
        public var kind: String
        public var tasks: Int
    }
    public struct Behind: Sendable, Codable {
        public var accountID: String
        public var entityType: String
        public var behindSeconds: Double
    }
    public struct StuckJob: Sendable, Codable {
        public var accountID: String
        public var jobID: UUID
        public var state: String
        public var ageSeconds: Double
    }

    public var deadTasks: Int
    public var deadByKind: [KindCount]
    /// Seconds since the oldest dead task died.
    public var oldestDeadSeconds: Double?
    public var coordinatorsAlive: Int
    public var leaderAlive: Bool
    public var workersAlive: Int
    public var workersLost: Int
    /// Tasks due now (available or failed, run_at passed).
    public var dueTasks: Int
    /// Where BEHIND was judged: the leader's backlog snapshot when fresh, else the live view
    /// (nil before migration 0010: live).
    public var backlog: BacklogSnapshot.Freshness?
    public var behindCount: Int
    /// The furthest behind first.
    public var behind: [Behind]
    public var failedFiles: Int
    public var failedFileAccounts: [String]
    public var oldestFailedFileSeconds: Double?
    public var stuckJobCount: Int
    /// The oldest first.
    public var stuckJobs: [StuckJob]

    /// Reads the facts in one repeatable-read snapshot; the backlog from the leader's snapshot
    /// when it is fresh (`BacklogSnapshot.freshness`), else from the live view. `maxBehind` bounds how far behind
    /// policy an account's oldest expired row may be, and how old an archive job may grow
    /// before it reaches `uploaded`.
    public static func read(
        on connection: Connection, maxBehind: Duration, sample: Int = 5
    ) throws
        -> StatusCheckFacts
    {
        let seconds = Double(maxBehind.components.seconds) + Double(maxBehind.components.attoseconds) / 1e18
        return try connection.withTransaction(.repeatableRead) { connection in
            let dead = try connection.query(
                """
                SELECT kind, count(*)::int, extract(epoch FROM now() - min(finished_at))::float8
                FROM lethe.failures WHERE state = 'dead' GROUP BY kind ORDER BY count(*) DESC, kind
                """
            ).map { try $0.decode((String, Int, Double?).self) }
            let processes = try connection.query(
                """
                SELECT count(*) FILTER (WHERE role = 'coordinator' AND status = 'alive')::int,
                       coalesce(bool_or(is_leader AND status = 'alive'), false),
                       count(*) FILTER (WHERE role = 'worker' AND status = 'alive')::int,
                       count(*) FILTER (WHERE role = 'worker' AND status = 'lost')::int,
                       (SELECT coalesce(sum(due), 0)::int FROM lethe.queue_summary)
                FROM lethe.worker_status
                """)[0]
            let backlog = try BacklogSnapshot.freshness(on: connection)
            let behind = try connection.query(
                """
                SELECT account_id, entity_type, extract(epoch FROM behind_by)::float8, count(*) OVER ()::int
                FROM \(BacklogSnapshot.view(backlog))
                WHERE runnable AND NOT held AND behind_by > make_interval(secs => $1)
                ORDER BY behind_by DESC, account_id, entity_type LIMIT $2
                """, [seconds, sample]
            ).map { try $0.decode((String, String, Double, Int).self) }
            let files = try connection.query(
                """
                SELECT count(*)::int, extract(epoch FROM now() - min(created_at))::float8,
                       (SELECT coalesce(array_agg(account_id ORDER BY n DESC, account_id), '{}') FROM (
                            SELECT account_id, count(*) AS n FROM lethe.backup_log
                            WHERE status IN ('upload_failed', 'delete_failed')
                            GROUP BY account_id ORDER BY n DESC, account_id LIMIT $1) a)
                FROM lethe.backup_log WHERE status IN ('upload_failed', 'delete_failed')
                """, [sample])[0]
            let stuck = try connection.query(
                """
                SELECT account_id, job_id, state, extract(epoch FROM age)::float8, count(*) OVER ()::int
                FROM lethe.open_archive_jobs
                WHERE state IN ('planning', 'packing', 'uploading') AND age > make_interval(secs => $1)
                ORDER BY created_at, account_id LIMIT $2
                """, [seconds, sample]
            ).map { try $0.decode((String, UUID, String, Double, Int).self) }
            return StatusCheckFacts(
                deadTasks: dead.reduce(0) { $0 + $1.1 },
                deadByKind: dead.prefix(sample).map { KindCount(kind: $0.0, tasks: $0.1) },
                oldestDeadSeconds: dead.compactMap(\.2).max(),
                coordinatorsAlive: try processes.decode(at: 0), leaderAlive: try processes.decode(at: 1),
                workersAlive: try processes.decode(at: 2), workersLost: try processes.decode(at: 3),
                dueTasks: try processes.decode(at: 4), backlog: backlog,
                behindCount: behind.first?.3 ?? 0,
                behind: behind.map { Behind(accountID: $0.0, entityType: $0.1, behindSeconds: $0.2) },
                failedFiles: try files.decode(at: 0), failedFileAccounts: try files.decode(at: 2),
                oldestFailedFileSeconds: try files.decode(at: 1),
                stuckJobCount: stuck.first?.4 ?? 0,
                stuckJobs: stuck.map { StuckJob(accountID: $0.0, jobID: $0.1, state: $0.2, ageSeconds: $0.3) })
        }
    }
}
