import Postgres
import Retention

/// How long one deleting transaction waits for a lock, and how long one of its statements
/// may run (`lock_timeout`, `statement_timeout`, set with `SET LOCAL` at its start). A batch
/// stuck behind an application's lock then fails with `lock_not_available` (55P03) or
/// `query_canceled` (57014), its transaction rolls back, and the task retries with backoff
/// instead of waiting forever while it keeps its lease.
public struct DeletionTimeouts: Sendable, Equatable {
    public var lock: Duration
    public var statement: Duration

    /// `retention.lock_timeout` 5 s, `retention.statement_timeout` 5 min.
    public static let standard = DeletionTimeouts(lock: .seconds(5), statement: .seconds(300))

    /// The longest either may be: PostgreSQL takes them in milliseconds as a 32-bit integer.
    public static let maximum: Duration = .milliseconds(Int64(Int32.max))

    public init(lock: Duration, statement: Duration) {
        self.lock = lock
        self.statement = statement
    }

    /// In the current transaction: `SET LOCAL lock_timeout` and `statement_timeout`.
    func apply(on connection: Connection) throws {
        try connection.execute(
            "SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)",
            [Self.setting(lock), Self.setting(statement)])
    }

    /// A duration as a PostgreSQL time setting in milliseconds, at least 1 (0 would mean "no limit").
    static func setting(_ duration: Duration) -> String {
        "\(min(max(duration.milliseconds, 1), maximum.milliseconds))ms"
    }
}
