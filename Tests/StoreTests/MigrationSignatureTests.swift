import Foundation
import Postgres
import Store
import TestSupport
import Testing

/// The migrations embedded in the binary, and the signatures `--baseline` checks, held
/// against the files and against the catalog of a really migrated database.
@Suite("embedded migrations and their signatures")
struct MigrationSignatureTests {
    static func diskFiles() throws -> [MigrationFile] {
        try MigrationFile.load(directory: Repository.root().appendingPathComponent("migrations"))
    }

    @Test func embeddedSetIsTheDirectoryByteForByte() throws {
        let embedded = try MigrationFile.embedded()
        let disk = try Self.diskFiles()
        #expect(embedded.map(\.fileName) == disk.map(\.fileName))
        #expect(embedded.map(\.checksum) == disk.map(\.checksum))
        #expect(embedded == disk)
        #expect(embedded.first?.version == 1)
    }

    /// Applies the migrations one by one; after each, the signature derived from the SQL is
    /// exactly what the catalog holds, and every migration adds or changes something checkable.
    @Test func signatureAfterEachVersionIsExactlyTheCatalog() async throws {
        let files = try MigrationFile.embedded()
        try await TestDatabase.with { database in
            let connection = try database.connect()
            defer { connection.close() }
            var previous = MigrationSignature()
            for (index, file) in files.enumerated() {
                let through = Array(files.prefix(index + 1))
                try Migrator(files: through).apply(connection)
                let signature = MigrationSignature(after: through)
                let catalog = try SchemaCatalog.read(connection)
                let expected = Set(signature.objects.keys)
                #expect(
                    expected.subtracting(catalog.objects).isEmpty,
                    "\(file.fileName): in the SQL but not the catalog: \(expected.subtracting(catalog.objects).sorted())"
                )
                #expect(
                    catalog.objects.subtracting(expected).isEmpty,
                    "\(file.fileName): in the catalog but not the SQL: \(catalog.objects.subtracting(expected).sorted())"
                )
                let differences = catalog.differences(from: signature)
                #expect(differences.isEmpty, "\(file.fileName): \(differences)")
                #expect(signature != previous, "\(file.fileName) adds nothing --baseline can check")
                #expect(signature.objects.values.contains(file.version) || signature.bodies != previous.bodies)
                previous = signature
            }
        }
    }

    @Test func tokenizerKeepsStringsWholeAndSkipsComments() {
        let sql = """
            -- CREATE TABLE lethe.commented (a int);
            /* CREATE TABLE lethe.block (a int); /* nested */ */
            CREATE TABLE IF NOT EXISTS lethe.t (a int, "B" text, CONSTRAINT c CHECK (a > 0), PRIMARY KEY (a));
            CREATE OR REPLACE FUNCTION lethe.f(x int, OUT y int) LANGUAGE plpgsql AS $body$
            BEGIN y := x; /* ; */ END $body$;
            DO $$ BEGIN EXECUTE 'CREATE TABLE lethe.inside (a int)'; END $$;
            CREATE INDEX t_a ON lethe.t (a);
            CREATE TRIGGER t_trg AFTER UPDATE OF a, "B" ON lethe.t FOR EACH ROW EXECUTE FUNCTION lethe.g();
            ALTER TABLE lethe.t ADD COLUMN IF NOT EXISTS c int, ADD CONSTRAINT d UNIQUE (c), DROP COLUMN a;
            CREATE VIEW lethe.v AS SELECT 'it''s; fine' AS s;
            """
        let file = try? MigrationFile(fileName: "0001_x.sql", contents: Data(sql.utf8))
        let signature = MigrationSignature(after: file.map { [$0] } ?? [])
        #expect(
            Set(signature.objects.keys) == [
                .table("t"), .column(table: "t", column: "B"), .column(table: "t", column: "c"),
                .function("f", arguments: 1), .index("t_a"), .trigger(table: "t", name: "t_trg"), .view("v"),
            ])
        #expect(signature.bodies[.function("f", arguments: 1)] == "\nBEGIN y := x; /* ; */ END ")
    }

    @Test func dropsAndRenamesRemoveWhatTheyName() throws {
        let first = try MigrationFile(
            fileName: "0001_a.sql",
            contents: Data(
                """
                CREATE TABLE lethe.a (x int); CREATE INDEX a_x ON lethe.a (x); CREATE TABLE lethe.b (y int);
                CREATE FUNCTION lethe.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
                CREATE VIEW lethe.v AS SELECT 1;
                """.utf8))
        let second = try MigrationFile(
            fileName: "0002_b.sql",
            contents: Data(
                """
                DROP TABLE IF EXISTS lethe.a; ALTER TABLE lethe.b RENAME TO c; ALTER TABLE lethe.c RENAME COLUMN y TO z;
                DROP FUNCTION lethe.f(); DROP VIEW lethe.v;
                """.utf8))
        let signature = MigrationSignature(after: [first, second])
        #expect(Set(signature.objects.keys) == [.table("c"), .column(table: "c", column: "z")])
        #expect(signature.objects[.table("c")] == 1)
    }

    @Test(
        "servers before 15 are refused, naming the version found",
        arguments: [
            (90624, "9.6.24"), (130015, "13.15"), (140011, "14.11"), (149999, "14.9999"), (0, "unknown"),
        ])
    func oldServersAreRefused(_ version: Int, _ shown: String) throws {
        let refusal = try #require(ServerRequirement.refusal(serverVersion: version))
        #expect(refusal.description.contains("PostgreSQL \(shown);"))
        #expect(refusal.description.contains("needs PostgreSQL 15 or later"))
    }

    @Test("servers from 15 on are accepted", arguments: [150000, 150018, 160004, 170002, 180000])
    func supportedServers(_ version: Int) {
        #expect(ServerRequirement.refusal(serverVersion: version) == nil)
    }

    @Test func schemaCompatibilityDecision() throws {
        let files = try MigrationFile.embedded()
        let all = Set(files.map(\.version))
        let highest = try #require(files.last?.version)
        #expect(SchemaCompatibility.problem(applied: all, known: files) == nil)
        let unmigrated = try #require(SchemaCompatibility.problem(applied: [], known: files))
        #expect(unmigrated.kind == .unmigrated)
        #expect(unmigrated.description.contains("needs version \(highest)"))
        #expect(unmigrated.description.contains("lethe migrate"))
        let behind = try #require(SchemaCompatibility.problem(applied: all.subtracting([highest]), known: files))
        #expect(behind.kind == .behind)
        #expect(behind.description.contains("at version \(highest - 1)"))
        #expect(behind.description.contains(files.last?.fileName ?? "-"))
        let newer = try #require(SchemaCompatibility.problem(applied: all.union([9999]), known: files))
        #expect(newer.kind == .newer)
        #expect(newer.description.contains("at version 9999"))
        #expect(newer.description.contains("up to \(highest)"))
        #expect(newer.description.contains("upgrade lethe"))
    }
}
