import Foundation
import Postgres

/// What `lethe status` shows, read from the monitoring views.
public struct StatusReport: Sendable, Codable {
    public struct QueueLine: Sendable, Codable {
        public var kind: String
        public var state: String
        public var tasks: Int
        public var due: Int
        public var oldestDueSeconds: Double?
    }
    public struct ProcessLine: Sendable, Codable {
        public var id: UUID
        public var role: String
        public var host: String
        public var pid: Int
        public var status: String
        public var isLeader: Bool
        public var slots: Int
        public var runningTasks: Int
        public var silentSeconds: Double
    }
    public struct FailureLine: Sendable, Codable {
        public var id: Int64
        public var kind: String
        public var accountID: String?
        public var entityType: String?
        public var state: String
        public var attempts: Int
        public var lastError: String?
    }
    /// Per entity type: accounts whose retention runs, is blocked or held; the backlog
    /// (expired rows still present) and how far behind policy the oldest is; rows deleted
    /// in the last 24 hours.
    public struct RetentionLine: Sendable, Codable {
        public var entityType: String
        public var running: Int
        public var blocked: Int
        public var held: Int
        public var expiredRows: Int
        public var behindSeconds: Double?
        public var deletedLastDay: Int
    }
    public var schemaVersion: Int
    public var queue: [QueueLine]
    public var retention: [RetentionLine]
    public var processes: [ProcessLine]
    public var failures: [FailureLine]
    public var retrying: Int
    public var dead: Int

    /// Reads the views in one repeatable-read snapshot, so the sections agree.
    public static func read(on connection: Connection, failureLimit: Int = 10) throws -> StatusReport {
        try connection.withTransaction(.repeatableRead) { connection in
            let version = try connection.query("SELECT coalesce(max(version), 0) FROM lethe.schema_migrations")[0]
                .decode(Int.self, at: 0)
            let queue = try connection.query(
                """
                SELECT kind, state, tasks, due, extract(epoch FROM oldest_due_age)::float8
                FROM lethe.queue_summary ORDER BY kind, state
                """
            ).map { row in
                QueueLine(
                    kind: try row.decode(at: 0), state: try row.decode(at: 1), tasks: try row.decode(at: 2),
                    due: try row.decode(at: 3), oldestDueSeconds: try row.decode(at: 4))
            }
            let processes = try connection.query(
                """
                SELECT id, role, host, pid, status, is_leader, slots, running_tasks,
                       extract(epoch FROM silent_for)::float8
                FROM lethe.worker_status
                WHERE status <> 'stopped' OR stopped_at > now() - interval '1 hour'
                ORDER BY role, status, started_at
                """
            ).map { row in
                ProcessLine(
                    id: try row.decode(at: 0), role: try row.decode(at: 1), host: try row.decode(at: 2),
                    pid: try row.decode(at: 3), status: try row.decode(at: 4), isLeader: try row.decode(at: 5),
                    slots: try row.decode(at: 6), runningTasks: try row.decode(at: 7),
                    silentSeconds: try row.decode(at: 8))
            }
            let failures = try connection.query(
                """
                SELECT id, kind, account_id, entity_type, state, attempts, last_error
                FROM lethe.failures ORDER BY coalesce(finished_at, next_attempt_at) DESC NULLS LAST, id DESC
                LIMIT $1
                """, [failureLimit]
            ).map { row in
                FailureLine(
                    id: try row.decode(at: 0), kind: try row.decode(at: 1), accountID: try row.decode(at: 2),
                    entityType: try row.decode(at: 3), state: try row.decode(at: 4), attempts: try row.decode(at: 5),
                    lastError: try row.decode(at: 6))
            }
            let counts = try connection.query(
                "SELECT count(*) FILTER (WHERE state = 'failed'), count(*) FILTER (WHERE state = 'dead') FROM lethe.failures"
            )[0]
            let (retrying, dead) = try counts.decode((Int, Int).self)
            let retention = try connection.query(
                """
                SELECT b.entity_type,
                       count(*) FILTER (WHERE b.runnable AND NOT b.held)::int,
                       count(*) FILTER (WHERE NOT b.runnable)::int,
                       count(*) FILTER (WHERE b.runnable AND b.held)::int,
                       coalesce(sum(b.expired_rows) FILTER (WHERE b.runnable), 0)::int8,
                       extract(epoch FROM max(b.behind_by) FILTER (WHERE b.runnable))::float8,
                       coalesce((SELECT sum(d.total_rows) FROM lethe.deletion_records d
                                 WHERE d.entity_type = b.entity_type AND d.deleted_at > now() - interval '24 hours'), 0)::int8
                FROM lethe.retention_backlog b
                GROUP BY b.entity_type ORDER BY b.entity_type
                """
            ).map { row in
                RetentionLine(
                    entityType: try row.decode(at: 0), running: try row.decode(at: 1), blocked: try row.decode(at: 2),
                    held: try row.decode(at: 3), expiredRows: try row.decode(at: 4),
                    behindSeconds: try row.decode(at: 5),
                    deletedLastDay: try row.decode(at: 6))
            }
            return StatusReport(
                schemaVersion: version, queue: queue, retention: retention, processes: processes, failures: failures,
                retrying: retrying, dead: dead)
        }
    }
}
