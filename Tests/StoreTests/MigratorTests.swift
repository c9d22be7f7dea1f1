import Foundation
import Postgres
import TestSupport
import Testing

@testable import Store

@Suite("Migrator against PostgreSQL")
struct MigratorTests {
    /// A directory of migration files for one test.
    struct Directory {
        let url: URL
        init(copyingRepository: Bool = true) throws {
            url =
                copyingRepository
                ? try Repository.copyOfMigrations()
                : FileManager.default.temporaryDirectory.appendingPathComponent("lethe-mig-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }
        func write(_ name: String, _ sql: String) throws {
            try Data(sql.utf8).write(to: url.appendingPathComponent(name))
        }
        func migrator() throws -> Migrator { Migrator(files: try MigrationFile.load(directory: url)) }
    }

    @Test func freshApplyCreatesSchemaAndRecordsEveryFile() async throws {
        try await TestDatabase.with { database in
            let directory = try Directory()
            let connection = try database.connect()
            let migrator = try directory.migrator()
            let applied = try migrator.apply(connection)
            #expect(applied.map(\.version) == migrator.files.map(\.version))
            #expect(!applied.isEmpty)
            let schema = try connection.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'lethe'")
            #expect(try schema[0].decode(Int.self, at: 0) == 1)
            let rows = try connection.query(
                "SELECT version, name, checksum FROM lethe.schema_migrations ORDER BY version")
            let recorded = try rows.map { try $0.decode((Int, String, String).self) }
            #expect(recorded.map(\.0) == migrator.files.map(\.version))
            #expect(recorded.map(\.1) == migrator.files.map(\.name))
            #expect(recorded.map(\.2) == migrator.files.map(\.checksum))
        }
    }

    @Test func secondRunChangesNothing() async throws {
        try await TestDatabase.with { database in
            let directory = try Directory()
            let connection = try database.connect()
            try directory.migrator().apply(connection)
            let before = try snapshot(connection)
            #expect(try directory.migrator().apply(connection).isEmpty)
            #expect(try snapshot(connection) == before)
            #expect(try directory.migrator().status(connection).allSatisfy { $0.state == .applied })
        }
    }

    @Test func fourConcurrentRunsApplyEachFileOnce() async throws {
        try await TestDatabase.with { database in
            let directory = try Directory()
            // Not idempotent on purpose: a second execution would fail or double the count.
            try directory.write(
                "9001_side_effect.sql",
                "CREATE TABLE public.applied_count (n int);\nINSERT INTO public.applied_count VALUES (1);\n")
            try directory.write(
                "9002_slow.sql", "SELECT pg_sleep(0.3);\nINSERT INTO public.applied_count VALUES (2);\n")
            let migrator = try directory.migrator()
            let threads = (0..<4).map { ConnectionThread(conninfo: database.url, name: "migrate-\($0)") }
            let counts = try await withThrowingTaskGroup(of: Int.self) { group in
                for thread in threads {
                    group.addTask { try await thread.run { try migrator.apply($0).count } }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            for thread in threads { await thread.shutdown() }
            #expect(counts.reduce(0, +) == migrator.files.count)
            #expect(counts.filter { $0 > 0 }.count == 1)
            let connection = try database.connect()
            let values = try connection.query("SELECT array_agg(n ORDER BY n) FROM public.applied_count")[0]
            #expect(try values.decode([Int64].self, at: 0) == [1, 2])
            let recorded = try connection.query("SELECT count(*) FROM lethe.schema_migrations")[0]
            #expect(try recorded.decode(Int.self, at: 0) == migrator.files.count)
        }
    }

    @Test func editedAppliedFileIsRefusedAndNothingRuns() async throws {
        try await TestDatabase.with { database in
            let directory = try Directory()
            try directory.write("9001_first.sql", "CREATE TABLE public.first (n int);\n")
            let connection = try database.connect()
            try directory.migrator().apply(connection)
            try directory.write("9001_first.sql", "CREATE TABLE public.first (n int, extra text);\n")
            try directory.write("9002_second.sql", "CREATE TABLE public.second (n int);\n")
            let error = #expect(throws: MigrationError.self) { try directory.migrator().apply(connection) }
            guard case .modifiedAfterApply(let name, _, _) = error else {
                Issue.record("expected modifiedAfterApply, got \(String(describing: error))")
                return
            }
            #expect(name == "9001_first.sql")
            #expect(error?.description.contains("9001_first.sql") == true)
            let second = try connection.query("SELECT to_regclass('public.second') IS NULL")[0]
            #expect(try second.decode(Bool.self, at: 0))
            let status = try directory.migrator().status(connection)
            #expect(status.first { $0.version == 9001 }?.state == .modified)
            #expect(status.first { $0.version == 9002 }?.state == .pending)
        }
    }

    @Test func statusListsAppliedAndPending() async throws {
        try await TestDatabase.with { database in
            let directory = try Directory()
            let connection = try database.connect()
            let before = try directory.migrator().status(connection)
            #expect(!before.isEmpty && before.allSatisfy { $0.state == .pending && $0.appliedAt == nil })
            try directory.migrator().apply(connection)
            try directory.write("9001_later.sql", "SELECT 1;\n")
            let after = try directory.migrator().status(connection)
            #expect(after.filter { $0.state == .applied }.count == before.count)
            #expect(after.last?.version == 9001 && after.last?.state == .pending)
            #expect(try directory.migrator().pending(connection).map(\.fileName) == ["9001_later.sql"])
        }
    }

    @Test func failingFileRollsBackAndIsNotRecorded() async throws {
        try await TestDatabase.with { database in
            let directory = try Directory()
            try directory.write("9001_ok.sql", "CREATE TABLE public.ok (n int);\n")
            try directory.write("9002_bad.sql", "CREATE TABLE public.half (n int);\nSELECT no_such_function();\n")
            let connection = try database.connect()
            let error = #expect(throws: PostgresError.self) { try directory.migrator().apply(connection) }
            #expect(error?.sqlState == .undefinedFunction)
            let state = try connection.query(
                """
                SELECT to_regclass('public.ok') IS NOT NULL, to_regclass('public.half') IS NULL,
                       (SELECT max(version) FROM lethe.schema_migrations)
                """)[0]
            let (okExists, halfAbsent, latest) = try state.decode((Bool, Bool, Int).self)
            #expect(okExists && halfAbsent && latest == 9001)
        }
    }

    /// Refused before it runs: its first statement would otherwise be committed. BEGIN and
    /// END inside a function body are not transaction control.
    @Test func fileThatCommitsItselfIsRefused() async throws {
        try await TestDatabase.with { database in
            let directory = try Directory()
            try directory.write(
                "9000_body.sql",
                "DO $$ BEGIN PERFORM 1; END $$;\nCREATE FUNCTION public.f() RETURNS int LANGUAGE plpgsql AS '\nBEGIN\nRETURN 1;\nEND';\n"
            )
            try directory.write("9001_commits.sql", "CREATE TABLE public.c (n int);\nCOMMIT;\n")
            let connection = try database.connect()
            #expect(throws: MigrationError.transactionControlInFile("9001_commits.sql")) {
                try directory.migrator().apply(connection)
            }
            let created = try connection.query("SELECT to_regclass('public.c') IS NOT NULL")[0]
            #expect(try created.decode(Bool.self, at: 0) == false)
        }
    }

    @Test func missingAppliedFileAndOutOfOrderFilesAreRefused() async throws {
        try await TestDatabase.with { database in
            let directory = try Directory()
            try directory.write("9005_five.sql", "SELECT 5;\n")
            let connection = try database.connect()
            try directory.migrator().apply(connection)
            try directory.write("9003_three.sql", "SELECT 3;\n")
            #expect(throws: MigrationError.outOfOrder(fileName: "9003_three.sql", latestApplied: 9005)) {
                try directory.migrator().apply(connection)
            }
            try FileManager.default.removeItem(at: directory.url.appendingPathComponent("9003_three.sql"))
            try FileManager.default.removeItem(at: directory.url.appendingPathComponent("9005_five.sql"))
            #expect(throws: MigrationError.appliedFileMissing(version: 9005, name: "five")) {
                try directory.migrator().apply(connection)
            }
        }
    }

    /// Tables, columns and recorded migrations, to compare before and after.
    func snapshot(_ connection: Connection) throws -> [String] {
        let result = try connection.query(
            """
            SELECT table_schema || '.' || table_name || '.' || column_name FROM information_schema.columns
            WHERE table_schema = 'lethe'
            UNION ALL SELECT 'migration ' || version || ' ' || applied_at FROM lethe.schema_migrations
            ORDER BY 1
            """)
        return try result.map { try $0.decode(String.self, at: 0) }
    }
}

@Suite("Migration files")
struct MigrationFileTests {
    @Test(
        "names the loader accepts and refuses",
        arguments: [
            ("0001_lethe_schema.sql", true), ("0123_add_holds_2.sql", true), ("12345_big.sql", true),
            ("001_short.sql", false), ("0001-dash.sql", false), ("0001_Upper.sql", false), ("0001_.sql", false),
            ("V1__flyway.sql", false), ("0000_zero.sql", false), ("0001_name.SQL", false),
        ])
    func fileNames(_ name: String, _ accepted: Bool) {
        #expect((MigrationFile.parse(fileName: name) != nil) == accepted)
    }

    @Test func checksumIsSHA256OfTheBytes() throws {
        let file = try MigrationFile(fileName: "0001_x.sql", contents: Data("abc".utf8))
        #expect(file.checksum == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func duplicateVersionsAreRefused() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-dup-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try Data("SELECT 1;".utf8).write(to: url.appendingPathComponent("0001_a.sql"))
        try Data("SELECT 1;".utf8).write(to: url.appendingPathComponent("00001_b.sql"))
        #expect(throws: MigrationError.duplicateVersion("00001_b.sql", "0001_a.sql")) {
            try MigrationFile.load(directory: url)
        }
    }

    @Test func repositoryMigrationsStayPlainSQLForOtherTools() throws {
        let files = try MigrationFile.load(directory: Repository.root().appendingPathComponent("migrations"))
        #expect(files.first?.version == 1)
        #expect(files.map(\.version) == Array(1...files.count), "versions are contiguous")
        for file in files {
            #expect(file.sql.hasPrefix("-- migrate:up\n"), "\(file.fileName) starts with dbmate's marker")
            let upper = file.sql.uppercased()
            #expect(
                !upper.contains("\nBEGIN;") && !upper.contains("\nCOMMIT;"), "\(file.fileName): no transaction control")
        }
    }
}
