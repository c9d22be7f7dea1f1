import Foundation
import Postgres
import Store
import TestSupport
import Testing

/// `lethe migrate --baseline N` against schemas that hold every object the migrations name
/// but not what they define: the deletion-safety SQL lives in view definitions, functions
/// with SQL-standard bodies (`RETURN …`, parsed at creation, no `prosrc` to compare) and CHECK
/// constraints, none of which the signature checks today.
@Suite("baseline refuses schemas that lack the deletion-safety SQL")
struct BaselineSafetyTests {
    /// A schema migrated to the newest version, then altered as `tamper` says, its records gone.
    private func baseline(after tamper: String) async throws -> Result<Migrator.BaselineReport, any Error> {
        let files = try MigrationFile.embedded()
        let highest = try #require(files.last?.version)
        return try await TestDatabase.with { database in
            let connection = try database.connect()
            defer { connection.close() }
            try Migrator(files: files).apply(connection)
            try connection.executeScript(tamper)
            try connection.execute("DELETE FROM lethe.schema_migrations")
            return Result(catching: { try Migrator(files: files).baseline(connection, through: highest) })
        }
    }

    private static func refused(_ result: Result<Migrator.BaselineReport, any Error>) -> Bool {
        if case .failure(let error) = result { return error is BaselineError }
        return false
    }

    /// The untouched schema baselines: the cases below fail for what they change, not for
    /// how they set up.
    @Test func anUntouchedSchemaBaselines() async throws {
        let result = try await baseline(after: "SELECT 1")
        #expect(!Self.refused(result), "\(result)")
    }

    /// `retention_cutoff` without the clamp to the type's minimum (0006's invariant: a cutoff
    /// is never later than now minus the minimum) keeps its name and arity: baseline records it.
    @Test func aCutoffWithoutTheMinimumClampIsRefused() async throws {
        let result = try await baseline(
            after: """
                CREATE OR REPLACE FUNCTION lethe.retention_cutoff(at timestamptz, keep interval, minimum interval)
                RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN at - keep;
                """)
        let refused = Self.refused(result)
        withKnownIssue("--baseline compares only string bodies (prosrc); SQL-standard bodies are unchecked") {
            #expect(refused, "baseline recorded the altered schema as migrated")
        }
    }

    /// The CHECK constraints of 0006 that keep mixed-sign intervals out of direct writes.
    @Test func missingIntervalConstraintsAreRefused() async throws {
        let result = try await baseline(
            after: """
                ALTER TABLE lethe.policies DROP CONSTRAINT policies_retention_positive;
                ALTER TABLE lethe.tier_intervals DROP CONSTRAINT tier_intervals_retention_positive;
                """)
        let refused = Self.refused(result)
        withKnownIssue("--baseline does not check constraints") {
            #expect(refused, "baseline recorded the altered schema as migrated")
        }
    }

    /// `interval_is_positive`, which every cutoff and the interval constraints rely on, made
    /// to accept anything (a mixed-sign interval then gives a cutoff).
    @Test func anIntervalCheckThatAcceptsEverythingIsRefused() async throws {
        let result = try await baseline(
            after: """
                CREATE OR REPLACE FUNCTION lethe.interval_is_positive(keep interval) RETURNS boolean
                LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN true;
                """)
        let refused = Self.refused(result)
        withKnownIssue("--baseline checks SQL-standard functions by name and arity only") {
            #expect(refused, "baseline recorded the altered schema as migrated")
        }
    }
}
