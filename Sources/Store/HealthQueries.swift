import Postgres

/// The statements behind `/healthz`, `/readyz` and the queue gauges of `/metrics`: each
/// cheap enough to run on every probe or scrape.
public enum HealthQueries {
    /// One row of `lethe.queue_summary`.
    public struct QueueDepth: Sendable, Equatable {
        public var kind: String
        public var state: String
        public var tasks: Int
        public var due: Int
        public var oldestDueSeconds: Double
    }

    /// The server answers a trivial query.
    public static func ping(on connection: Connection) throws {
        _ = try connection.query("SELECT 1")
    }

    /// Tasks by kind and state (`lethe.queue_summary`).
    public static func queueDepth(on connection: Connection) throws -> [QueueDepth] {
        try connection.query(
            """
            SELECT kind, state, tasks::int8, due::int8, coalesce(extract(epoch FROM oldest_due_age), 0)::float8
            FROM lethe.queue_summary
            """
        ).map { row in
            QueueDepth(
                kind: try row.decode(at: 0), state: try row.decode(at: 1), tasks: try row.decode(at: 2),
                due: try row.decode(at: 3), oldestDueSeconds: try row.decode(at: 4))
        }
    }
}
