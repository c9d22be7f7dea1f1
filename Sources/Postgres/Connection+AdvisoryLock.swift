extension Connection {
    /// Takes the session-level advisory lock `key` if free; true when taken.
    /// Held until `advisoryUnlock` or the session ends (so a dead holder releases it).
    public func tryAdvisoryLock(_ key: Int64) throws -> Bool {
        try query("SELECT pg_try_advisory_lock($1)", [key])[0].decode(Bool.self, at: 0)
    }

    /// Waits for and takes the session-level advisory lock `key`.
    public func advisoryLock(_ key: Int64) throws {
        try execute("SELECT pg_advisory_lock($1)", [key])
    }

    /// Releases one hold of the session-level advisory lock `key`; false when not held.
    @discardableResult
    public func advisoryUnlock(_ key: Int64) throws -> Bool {
        try query("SELECT pg_advisory_unlock($1)", [key])[0].decode(Bool.self, at: 0)
    }

    /// Takes the transaction-level advisory lock `key` (released at commit or rollback).
    public func advisoryTransactionLock(_ key: Int64) throws {
        try execute("SELECT pg_advisory_xact_lock($1)", [key])
    }
}
