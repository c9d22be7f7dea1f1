extension Connection {
    /// True when a connection pooler (PgBouncer, pgcat, …) stands between this connection
    /// and PostgreSQL: a pooler answers the startup with a backend process id of its own, so
    /// the id libpq reported differs from the one the serving backend gives. A pooler in
    /// transaction mode moves the session between statements, which breaks session state
    /// (session advisory locks, LISTEN). Wraps `PQbackendPID` and `pg_backend_pid()`.
    public func isThroughPooler() throws -> Bool {
        let served = try query("SELECT pg_backend_pid()")[0].decode(Int32.self, at: 0)
        return served != backendPID
    }
}
