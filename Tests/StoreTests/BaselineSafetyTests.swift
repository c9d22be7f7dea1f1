import Foundation
import Postgres
import Store
import TestSupport
import Testing

/// `lethe migrate --baseline N` against schemas that hold every object the migrations name
/// but not what they define: the deletion-safety SQL lives in view definitions, functions
/// with SQL-standard bodies (`RETURN …`, parsed at creation), CHECK constraints, SECURITY
/// DEFINER settings and grants. Baseline compares each with a schema it builds from the
/// migrations themselves.
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

    /// The refusal's text, or "" when baseline did not refuse.
    private static func refusal(_ result: Result<Migrator.BaselineReport, any Error>) -> String {
        if case .failure(let error as BaselineError) = result { return error.description }
        return ""
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
        #expect(Self.refused(result), "baseline recorded the altered schema as migrated: \(result)")
    }

    /// The CHECK constraints of 0006 that keep mixed-sign intervals out of direct writes.
    @Test func missingIntervalConstraintsAreRefused() async throws {
        let result = try await baseline(
            after: """
                ALTER TABLE lethe.policies DROP CONSTRAINT policies_retention_positive;
                ALTER TABLE lethe.tier_intervals DROP CONSTRAINT tier_intervals_retention_positive;
                """)
        #expect(Self.refused(result), "baseline recorded the altered schema as migrated: \(result)")
    }

    /// `interval_is_positive`, which every cutoff and the interval constraints rely on, made
    /// to accept anything (a mixed-sign interval then gives a cutoff).
    @Test func anIntervalCheckThatAcceptsEverythingIsRefused() async throws {
        let result = try await baseline(
            after: """
                CREATE OR REPLACE FUNCTION lethe.interval_is_positive(keep interval) RETURNS boolean
                LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN true;
                """)
        #expect(Self.refused(result), "baseline recorded the altered schema as migrated: \(result)")
    }

    /// A view's query changed (here: `open_archive_jobs`, which `status --check` reads for
    /// stuck jobs, made to show none) is named with what differs.
    @Test func aChangedViewIsRefusedNamingIt() async throws {
        let result = try await baseline(
            after: """
                ALTER VIEW lethe.open_archive_jobs RENAME TO open_archive_jobs_moved;
                CREATE VIEW lethe.open_archive_jobs AS SELECT * FROM lethe.open_archive_jobs_moved WHERE false;
                """)
        let text = Self.refusal(result)
        #expect(text.contains("view lethe.open_archive_jobs differs: expected"), "\(result)")
        #expect(text.contains("unexpected view lethe.open_archive_jobs_moved"), "\(text)")
    }

    /// SECURITY DEFINER dropped, a search_path unpinned, EXECUTE granted to PUBLIC: each refused.
    @Test(arguments: [
        "ALTER FUNCTION lethe.retention_backlog_rows() SECURITY INVOKER",
        "ALTER FUNCTION lethe.retention_backlog_rows() RESET search_path",
        "GRANT EXECUTE ON FUNCTION lethe.retention_backlog_rows() TO PUBLIC",
        "GRANT INSERT ON lethe.entity_types TO lethe_monitor",
        "REVOKE USAGE ON SCHEMA lethe FROM lethe_tenant_admin",
    ])
    func changedPrivilegesAreRefused(_ tamper: String) async throws {
        let result = try await baseline(after: tamper)
        #expect(Self.refused(result), "\(tamper): \(result)")
    }

    /// A trigger no migration creates could veto or rewrite Lethe's writes: refused. An index
    /// an operator added, and the predicate functions `lethe policy sync` creates, are allowed.
    @Test func extraTriggersAreRefusedExtraIndexesAllowed() async throws {
        let trigger = try await baseline(
            after: """
                CREATE FUNCTION lethe.veto() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
                CREATE TRIGGER veto BEFORE DELETE ON lethe.holds FOR EACH ROW EXECUTE FUNCTION lethe.veto();
                """)
        let text = Self.refusal(trigger)
        #expect(text.contains("unexpected trigger veto on lethe.holds"), "\(trigger)")
        #expect(text.contains("unexpected function lethe.veto()"), "\(trigger)")
        let allowed = try await baseline(
            after: """
                CREATE INDEX operators_own ON lethe.holds (reason);
                CREATE FUNCTION lethe.eligible_user_0123456789abcdef(lethe_row lethe.holds) RETURNS boolean
                LANGUAGE sql STABLE RETURN true;
                """)
        #expect(!Self.refused(allowed), "\(allowed)")
    }

    /// After each migration, baselining that version records it and baselining the one
    /// before is refused as ahead: every migration changes something baseline compares.
    @Test func everyMigrationIsCheckedAndAheadIsRefused() async throws {
        let files = try MigrationFile.embedded()
        try await TestDatabase.with { database in
            let connection = try database.connect()
            defer { connection.close() }
            for (index, file) in files.enumerated() {
                let through = Migrator(files: Array(files.prefix(index + 1)))
                try through.apply(connection)
                try connection.execute("DELETE FROM lethe.schema_migrations")
                if index > 0 {
                    let early = Result {
                        try Migrator(files: files).baseline(connection, through: files[index - 1].version)
                    }
                    if case .failure(let refusal as BaselineError) = early, case .schemaAhead = refusal {
                    } else {
                        Issue.record("\(file.fileName): baseline \(index) not refused as ahead: \(early)")
                    }
                }
                let report = try Migrator(files: files).baseline(connection, through: file.version)
                #expect(report.recorded.map(\.version) == files.prefix(index + 1).map(\.version))
            }
        }
    }

    /// A file (from --migrations DIR) that commits would make baseline's scratch work, the
    /// existing schema dropped, permanent: it is refused before anything runs.
    @Test func aFileWithTransactionControlIsRefusedBeforeAnythingRuns() async throws {
        let embedded = try MigrationFile.embedded()
        let highest = try #require(embedded.last?.version)
        let commits = try MigrationFile(
            fileName: String(format: "%04d_commits.sql", highest + 1),
            contents: Data("CREATE TABLE lethe.later (a int);\n-- a comment; then\ncommit ;\n".utf8))
        try await TestDatabase.with { database in
            let connection = try database.connect()
            defer { connection.close() }
            try Migrator(files: embedded).apply(connection)
            try connection.execute("INSERT INTO lethe.tiers (name) VALUES ('kept')")
            try connection.execute("DELETE FROM lethe.schema_migrations")
            #expect(throws: MigrationError.transactionControlInFile(commits.fileName)) {
                try Migrator(files: embedded + [commits]).baseline(connection, through: highest + 1)
            }
            let kept = try connection.query("SELECT count(*) FROM lethe.tiers WHERE name = 'kept'")[0]
            #expect(try kept.decode(Int.self, at: 0) == 1)
        }
    }
}
