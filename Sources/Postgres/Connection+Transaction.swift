/// Transaction isolation levels, as `BEGIN ISOLATION LEVEL …` spells them.
public enum IsolationLevel: String, Sendable {
    case readCommitted = "READ COMMITTED"
    case repeatableRead = "REPEATABLE READ"
    case serializable = "SERIALIZABLE"
}

extension Connection {
    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws.
    ///
    /// If a statement failed inside `body` and `body` swallowed the error, the transaction is
    /// aborted on the server; the commit is then refused with an error instead of silently
    /// becoming a rollback.
    public func withTransaction<T>(
        _ isolation: IsolationLevel = .readCommitted, _ body: (Connection) throws -> T
    ) throws -> T {
        precondition(!isInTransaction, "withTransaction inside a transaction; use withSavepoint")
        try execute("BEGIN ISOLATION LEVEL \(isolation.rawValue)")
        let value: T
        do {
            value = try body(self)
        } catch {
            rollbackQuietly()
            throw error
        }
        if isInFailedTransaction {
            rollbackQuietly()
            throw PostgresError(
                .server, message: "the transaction was aborted by an earlier error and has been rolled back")
        }
        try execute("COMMIT")
        return value
    }

    /// Runs `body` under a savepoint inside the current transaction: released when it
    /// returns, rolled back to and released (keeping the outer transaction usable, and not
    /// nested one level deeper) when it throws.
    public func withSavepoint<T>(_ name: String = "lethe_savepoint", _ body: (Connection) throws -> T) throws -> T {
        precondition(isInTransaction, "withSavepoint outside a transaction")
        let quoted = SQLIdentifier.quote(name)
        try execute("SAVEPOINT \(quoted)")
        do {
            let value = try body(self)
            try execute("RELEASE SAVEPOINT \(quoted)")
            return value
        } catch {
            if !isBroken, (try? execute("ROLLBACK TO SAVEPOINT \(quoted)")) != nil {
                _ = try? execute("RELEASE SAVEPOINT \(quoted)")
            }
            throw error
        }
    }

    private func rollbackQuietly() {
        guard !isBroken, isInTransaction else { return }
        do { try execute("ROLLBACK") } catch {
            // A failed ROLLBACK leaves the session in an unknown state: do not reuse it.
            close()
        }
    }
}
