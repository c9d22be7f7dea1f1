import Foundation
import Postgres
import Retention

/// What operators do to tasks by hand: list, retry, cancel.
public struct TaskAdministration: Sendable {
    public init() {}

    /// Which tasks `list` shows.
    public struct Filter: Sendable {
        public var states: [TaskState] = []
        public var kinds: [String] = []
        public var accountID: String?
        public var limit = 50
        public init() {}
    }

    /// Tasks matching `filter`, newest first.
    public func list(_ filter: Filter, on connection: Connection) throws -> [TaskRecord] {
        let states: [String]? = filter.states.isEmpty ? nil : filter.states.map(\.rawValue)
        let kinds: [String]? = filter.kinds.isEmpty ? nil : filter.kinds
        let result = try connection.query(
            """
            SELECT \(QueueSQL.taskColumns) FROM lethe.tasks
            WHERE ($1::text[] IS NULL OR state = ANY($1))
              AND ($2::text[] IS NULL OR kind = ANY($2))
              AND ($3::text IS NULL OR account_id = $3)
            ORDER BY id DESC
            LIMIT $4
            """, [states, kinds, filter.accountID, filter.limit])
        return try result.map(Self.record)
    }

    /// Puts failed, dead or cancelled tasks back on the queue now, with fresh attempts;
    /// returns the ids retried. Refused, naming the task, when its (kind, account, entity
    /// type) already has an unfinished task.
    public func retry(_ ids: [Int64], on connection: Connection) throws -> [Int64] {
        do {
            let result = try connection.query(
                """
                WITH retried AS (
                    UPDATE lethe.tasks
                    SET state = \(TaskEvent.retry.targetSQL), run_at = now(), attempts = 0, finished_at = NULL,
                        worker_id = NULL, lease_expires_at = NULL
                    WHERE id = ANY($1) AND \(TaskEvent.retry.leaves("state"))
                    RETURNING id
                ), notified AS (
                    SELECT pg_notify('\(QueueSQL.channel)', count(*)::text) FROM retried HAVING count(*) > 0
                )
                SELECT id, (SELECT count(*) FROM notified) FROM retried ORDER BY id
                """, [ids])
            return try result.map { try $0.decode(Int64.self, at: 0) }
        } catch let error as PostgresError where error.sqlState == .uniqueViolation {
            throw PostgresError(
                .server, sqlState: error.sqlState,
                message: "cannot retry: the same kind, account and entity type already has an unfinished task "
                    + "(lethe task list shows it)")
        }
    }

    /// Cancels tasks that have not finished; returns the ids cancelled. A running task's
    /// worker learns of it at its next heartbeat and stops touching the task.
    public func cancel(_ ids: [Int64], on connection: Connection) throws -> [Int64] {
        try connection.query(
            """
            UPDATE lethe.tasks
            SET state = \(TaskEvent.cancel.targetSQL), finished_at = now(), worker_id = NULL, lease_expires_at = NULL,
                last_error = coalesce(last_error, 'cancelled by an operator')
            WHERE id = ANY($1) AND \(TaskEvent.cancel.leaves("state"))
            RETURNING id
            """, [ids]
        ).map { try $0.decode(Int64.self, at: 0) }.sorted()
    }

    static func record(_ row: Row) throws -> TaskRecord {
        TaskRecord(
            id: try row.decode(at: 0), kind: try row.decode(at: 1), accountID: try row.decode(at: 2),
            entityType: try row.decode(at: 3),
            state: TaskState(rawValue: try row.decode(String.self, at: 4)) ?? .dead,
            priority: try row.decode(at: 5), runAt: try row.decode(at: 6), attempts: try row.decode(at: 7),
            maxAttempts: try row.decode(at: 8), yields: try row.decode(at: 9), workerID: try row.decode(at: 10),
            lastError: try row.decode(at: 11), createdAt: try row.decode(at: 12), startedAt: try row.decode(at: 13),
            finishedAt: try row.decode(at: 14))
    }
}
