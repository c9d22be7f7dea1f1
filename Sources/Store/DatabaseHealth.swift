import Postgres

/// The database health signals behind the workers' throttle (issue 17), read in one short
/// read-only transaction cheap enough to run every few seconds per worker process.
public enum DatabaseHealth {
    /// The default of `throttle.replication_lag_query`: the replay lag of the slowest
    /// replica in seconds, NULL without replicas (or without `pg_monitor` to see them).
    public static let standardLagQuery = "SELECT max(extract(epoch FROM replay_lag)) FROM pg_stat_replication"

    /// What one sample read; `walPosition` is the WAL insert position in bytes, for the
    /// caller to turn two samples into a rate.
    public struct Sample: Sendable, Equatable {
        public var replicationLag: Double?
        public var walPosition: Double
        public var oldestTransactionAge: Double?
        public var lockWaits: Int
    }

    /// Reads the signals: the lag through `lagQuery` (one statement returning at most one
    /// row of one numeric column), the WAL position, the age of the oldest transaction of
    /// this database that holds an xid or a snapshot (idle sessions, this one and Lethe's
    /// own, `application_name` lethe…, left out), and the lock requests waiting on `type`'s
    /// tables (Lethe's own waiters left out).
    ///
    /// Runs READ ONLY with a 5 s statement timeout, so a lag query can never write or hang,
    /// and is rolled back, so it leaves nothing in the session either.
    public static func sample(
        lagQuery: String, type: CompiledEntityType?, on connection: Connection
    ) throws -> Sample {
        try readOnly(connection) { connection in
            let lag = try replicationLag(lagQuery, on: connection)
            let tables = type?.tables.map(\.sql) ?? []
            let row = try connection.query(
                """
                SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::float8,
                    (SELECT extract(epoch FROM max(clock_timestamp() - a.xact_start))::float8
                     FROM pg_stat_activity a
                     WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
                         AND a.state IS DISTINCT FROM 'idle' AND a.xact_start IS NOT NULL
                         AND (a.backend_xid IS NOT NULL OR a.backend_xmin IS NOT NULL)
                         AND a.application_name NOT LIKE 'lethe%'),
                    (SELECT count(*)::int8 FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
                     WHERE NOT l.granted AND l.relation IN (SELECT to_regclass(t) FROM unnest($1::text[]) t)
                         AND coalesce(a.application_name, '') NOT LIKE 'lethe%')
                """, [tables])[0]
            let (wal, age, waits) = try row.decode((Double, Double?, Int64).self)
            return Sample(replicationLag: lag, walPosition: wal, oldestTransactionAge: age, lockWaits: Int(waits))
        }
    }

    /// Runs `lagQuery` once and checks its shape: the check `lethe worker` makes at start.
    public static func checkLagQuery(_ lagQuery: String, on connection: Connection) throws {
        try readOnly(connection) { connection in _ = try replicationLag(lagQuery, on: connection) }
    }

    /// Runs `body` in a READ ONLY transaction with a 5 s statement timeout that is always
    /// rolled back: what a lag query changes in the session (`set_config(…, false)`, which a
    /// commit would keep, and through a pooler hand to other clients) ends with it. A session
    /// whose rollback fails is closed.
    private static func readOnly<T>(_ connection: Connection, _ body: (Connection) throws -> T) throws -> T {
        precondition(!connection.isInTransaction, "a health sample inside a transaction")
        try connection.execute("BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY")
        defer {
            if connection.isInTransaction {
                do { try connection.execute("ROLLBACK") } catch { connection.close() }
            }
        }
        try connection.execute("SET LOCAL statement_timeout = '5s'")
        return try body(connection)
    }

    private static func replicationLag(_ lagQuery: String, on connection: Connection) throws -> Double? {
        // One statement only: the extended protocol refuses several.
        let result = try connection.query(lagQuery)
        guard result.columnCount == 1, result.count <= 1 else {
            throw LagQueryShape(columns: result.columnCount, rows: result.count)
        }
        guard let row = result.first else { return nil }
        do {
            return try row.decode(Double?.self, at: 0)
        } catch {
            throw LagQueryShape(columns: 1, rows: 1, notNumeric: true)
        }
    }
}

/// `throttle.replication_lag_query` returned something else than one number.
public struct LagQueryShape: Error, CustomStringConvertible {
    public var columns: Int
    public var rows: Int
    public var notNumeric = false
    public var description: String {
        notNumeric
            ? "its value is not a number of seconds"
            : "it returned \(rows) rows of \(columns) columns; expected at most one row of one numeric column (seconds)"
    }
}
