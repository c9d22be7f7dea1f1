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
        /// Why the worker slows or pauses retention for the database's health (empty: it
        /// does not; always empty before migration 0012), since how long, and why in words.
        public var throttledReasons: [String] = []
        public var throttledForSeconds: Double?
        public var throttleDetail: String?
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
    /// The backup log (`lethe.backup_log`, `lethe.archive_status`): files per status, the
    /// newest failed files with their errors, and per account with archiving on its last
    /// upload (the stalest first).
    public struct BackupLog: Sendable, Codable {
        public struct StatusCount: Sendable, Codable {
            public var status: String
            public var files: Int
            public var totalSize: Int64
        }
        public struct FailedFile: Sendable, Codable {
            public var id: Int64
            public var accountID: String
            public var fileName: String
            public var status: String
            public var attempts: Int
            public var error: String?
        }
        public struct AccountLine: Sendable, Codable {
            public var accountID: String
            public var sites: Int
            public var openJobs: Int
            public var failedFiles: Int
            public var lastUpload: Date?
            public var nextRunAt: Date?
        }
        public var statuses: [StatusCount]
        public var failedFiles: [FailedFile]
        public var accounts: [AccountLine]
    }
    public var schemaVersion: Int
    public var queue: [QueueLine]
    public var retention: [RetentionLine]
    /// Where `retention` came from: the leader's backlog snapshot when fresh, else the live
    /// view (nil before migration 0010: live).
    public var backlog: BacklogSnapshot.Freshness?
    public var processes: [ProcessLine]
    public var failures: [FailureLine]
    public var retrying: Int
    public var dead: Int
    /// Nil before migration 0004 (no backup log yet).
    public var backupLog: BackupLog?

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
            // The throttle columns came with migration 0012; a status of an older schema shows none.
            let throttle =
                version >= 12
                ? """
                , throttled_reasons,
                       CASE WHEN status = 'alive' THEN extract(epoch FROM now() - throttled_since)::float8 END,
                       throttle_detail
                """ : ", '{}'::text[], NULL::float8, NULL::text"
            let processes = try connection.query(
                """
                SELECT id, role, host, pid, status, is_leader, slots, running_tasks,
                       extract(epoch FROM silent_for)::float8\(throttle)
                FROM lethe.worker_status
                WHERE status <> 'stopped' OR stopped_at > now() - interval '1 hour'
                ORDER BY role, status, started_at
                """
            ).map { row in
                let alive: String = try row.decode(at: 4)
                return ProcessLine(
                    id: try row.decode(at: 0), role: try row.decode(at: 1), host: try row.decode(at: 2),
                    pid: try row.decode(at: 3), status: alive, isLeader: try row.decode(at: 5),
                    slots: try row.decode(at: 6), runningTasks: try row.decode(at: 7),
                    silentSeconds: try row.decode(at: 8),
                    throttledReasons: alive == "alive" ? try row.decode(at: 9) : [],
                    throttledForSeconds: try row.decode(at: 10),
                    throttleDetail: alive == "alive" ? try row.decode(at: 11) : nil)
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
            let backlog = try BacklogSnapshot.freshness(on: connection)
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
                FROM \(BacklogSnapshot.view(backlog)) b
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
                schemaVersion: version, queue: queue, retention: retention, backlog: backlog, processes: processes,
                failures: failures,
                retrying: retrying, dead: dead, backupLog: try readBackupLog(on: connection, failureLimit: failureLimit)
            )
        }
    }

    static func readBackupLog(on connection: Connection, failureLimit: Int) throws -> BackupLog? {
        guard try connection.query("SELECT to_regclass('lethe.backup_log') IS NOT NULL")[0].decode(Bool.self, at: 0)
        else { return nil }
        let statuses = try connection.query(
            """
            SELECT status, count(*)::int, coalesce(sum(total_size), 0)::int8 FROM lethe.backup_log
            GROUP BY status ORDER BY array_position(ARRAY['archiving', 'uploading', 'uploaded', 'downloaded',
                'deleting', 'deleted', 'upload_failed', 'delete_failed'], status)
            """
        ).map { row in
            BackupLog.StatusCount(
                status: try row.decode(at: 0), files: try row.decode(at: 1), totalSize: try row.decode(at: 2))
        }
        let failed = try connection.query(
            """
            SELECT id, account_id, file_name, status, attempts, error FROM lethe.backup_log
            WHERE status IN ('upload_failed', 'delete_failed') ORDER BY created_at DESC, id DESC LIMIT $1
            """, [failureLimit]
        ).map { row in
            BackupLog.FailedFile(
                id: try row.decode(at: 0), accountID: try row.decode(at: 1), fileName: try row.decode(at: 2),
                status: try row.decode(at: 3), attempts: try row.decode(at: 4), error: try row.decode(at: 5))
        }
        let accounts = try connection.query(
            """
            SELECT account_id, sites::int, open_jobs::int, failed_files::int, last_upload, next_run_at
            FROM lethe.archive_status WHERE enabled ORDER BY last_upload NULLS FIRST, account_id
            """
        ).map { row in
            BackupLog.AccountLine(
                accountID: try row.decode(at: 0), sites: try row.decode(at: 1), openJobs: try row.decode(at: 2),
                failedFiles: try row.decode(at: 3), lastUpload: try row.decode(at: 4), nextRunAt: try row.decode(at: 5))
        }
        return BackupLog(statuses: statuses, failedFiles: failed, accounts: accounts)
    }
}
