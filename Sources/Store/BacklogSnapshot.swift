import Foundation
import Postgres
import Retention

/// The backlog snapshot (migration 0010): `lethe.retention_backlog` copied into a table the
/// leader refreshes every `coordinator.backlog_interval`, so that scrapers, dashboards and
/// `lethe status --check` read it in milliseconds instead of counting expired rows in every
/// account's tables (seconds to minutes on 10,000 accounts).
public struct BacklogSnapshot: Sendable {
    /// How often the leader refreshes; recorded with each refresh, so readers judge staleness
    /// (older than two intervals) against the leader's setting rather than their own.
    public var interval: Duration
    /// Bounds one refresh: a slower one rolls back and the previous snapshot stays.
    public var statementTimeout: Duration
    /// How long the refresh waits for a lock (say, behind a DDL statement on an application
    /// table) before it gives up rather than queueing workers behind itself.
    public var lockTimeout: Duration

    /// `statementTimeout` defaults to the interval, at most 10 minutes.
    public init(interval: Duration, statementTimeout: Duration? = nil, lockTimeout: Duration = .seconds(5)) {
        self.interval = interval
        self.statementTimeout = statementTimeout ?? min(interval, .seconds(600))
        self.lockTimeout = lockTimeout
    }

    /// Replaces the snapshot with the live view in one transaction, bounded by the timeouts;
    /// returns the number of (account, entity type) rows. `process` is recorded as the refresher.
    public func refresh(by process: UUID?, on connection: Connection) throws -> Int {
        try connection.withTransaction { connection in
            try DeletionTimeouts(lock: lockTimeout, statement: statementTimeout).apply(on: connection)
            return try connection.query(
                "SELECT lethe.refresh_backlog_snapshot(make_interval(secs => $1), $2)",
                [Self.seconds(interval), process])[0].decode(Int.self, at: 0)
        }
    }

    /// Records that the leader does not refresh (`coordinator.backlog_interval: 0`) and empties
    /// the snapshot: readers then use the live view.
    public static func disable(by process: UUID?, on connection: Connection) throws {
        try connection.execute("SELECT lethe.disable_backlog_snapshot($1)", [process])
    }

    /// Where a reader should take the backlog from, and why.
    public struct Freshness: Sendable, Codable, Equatable {
        public enum Source: String, Sendable, Codable {
            /// A snapshot younger than two refresh intervals.
            case snapshot
            /// The live view: refreshing is off, never ran, or fell behind (see `problem`).
            case live
        }
        public var source: Source
        /// Seconds since the snapshot was measured (nil: never).
        public var ageSeconds: Double?
        /// The leader's refresh interval in seconds (nil: no refresh recorded; 0: off).
        public var intervalSeconds: Double?
        /// Why the snapshot is not used when refreshing is on: "missing" or "stale".
        public var problem: String?
    }

    /// Reads `lethe.backlog_snapshot_status` (nil before migration 0010: the live view is all there is).
    public static func freshness(on connection: Connection) throws -> Freshness? {
        guard
            try connection.query("SELECT to_regclass('lethe.backlog_snapshot_status') IS NOT NULL")[0]
                .decode(Bool.self, at: 0)
        else { return nil }
        let rows = try connection.query(
            """
            SELECT extract(epoch FROM age)::float8, extract(epoch FROM refresh_interval)::float8, disabled, stale
            FROM lethe.backlog_snapshot_status
            """)
        guard let row = rows.first else {
            return Freshness(source: .live, ageSeconds: nil, intervalSeconds: nil, problem: "missing")
        }
        let (age, interval, disabled, stale) = try row.decode((Double?, Double, Bool, Bool).self)
        if disabled { return Freshness(source: .live, ageSeconds: nil, intervalSeconds: 0, problem: nil) }
        if age == nil {
            return Freshness(source: .live, ageSeconds: nil, intervalSeconds: interval, problem: "missing")
        }
        return Freshness(
            source: stale ? .live : .snapshot, ageSeconds: age, intervalSeconds: interval,
            problem: stale ? "stale" : nil)
    }

    /// The view a reader with `freshness` queries: the snapshot or the live backlog.
    static func view(_ freshness: Freshness?) -> String {
        freshness?.source == .snapshot ? "lethe.retention_backlog_snapshot" : "lethe.retention_backlog"
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
