import Postgres

/// Whether this binary may run against the schema: every migration it knows is applied and
/// none newer than it knows. `lethe coordinator`, `worker` and `run` refuse to start
/// otherwise; a readiness probe can ask the same question with `check(_:)`.
public enum SchemaCompatibility {
    /// Why the schema does not fit this binary, naming both versions and what to do.
    public struct Problem: Error, Equatable, Sendable, CustomStringConvertible {
        public enum Kind: String, Sendable { case unmigrated, behind, newer }
        public var kind: Kind
        /// The highest version recorded in `lethe.schema_migrations` (0: none).
        public var applied: Int
        /// The highest migration version this binary knows.
        public var known: Int
        /// Known migrations not recorded as applied.
        public var pending: [String]

        public var description: String {
            switch kind {
            case .unmigrated:
                return "schema lethe is not migrated (no version recorded in lethe.schema_migrations); "
                    + "this binary needs version \(known): run `lethe migrate` first"
            case .behind:
                return "schema lethe is at version \(applied) but this binary needs version \(known) "
                    + "(pending: \(pending.joined(separator: ", "))): run `lethe migrate` first"
            case .newer:
                return "schema lethe is at version \(applied), newer than this binary knows (up to \(known)): "
                    + "upgrade lethe to a release that has migration \(applied), or check --database-url"
            }
        }
    }

    /// The problem with the schema for a binary that knows `known`, or nil when it fits.
    public static func check(_ connection: Connection, known: [MigrationFile]) throws -> Problem? {
        let applied = try Migrator(files: known).appliedMigrations(connection)
        return problem(applied: Set(applied.keys), known: known)
    }

    /// `check(_:known:)` against the migrations embedded in this binary.
    public static func check(_ connection: Connection) throws -> Problem? {
        try check(connection, known: try MigrationFile.embedded())
    }

    /// The decision, without a database: `applied` are the recorded versions.
    public static func problem(applied: Set<Int>, known: [MigrationFile]) -> Problem? {
        let highestKnown = known.map(\.version).max() ?? 0
        let highestApplied = applied.max() ?? 0
        let pending = known.filter { !applied.contains($0.version) }.map(\.fileName)
        if highestApplied > highestKnown {
            return Problem(kind: .newer, applied: highestApplied, known: highestKnown, pending: pending)
        }
        if applied.isEmpty, !known.isEmpty {
            return Problem(kind: .unmigrated, applied: 0, known: highestKnown, pending: pending)
        }
        if !pending.isEmpty {
            return Problem(kind: .behind, applied: highestApplied, known: highestKnown, pending: pending)
        }
        return nil
    }
}
