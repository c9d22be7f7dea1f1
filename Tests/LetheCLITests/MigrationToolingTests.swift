import Foundation
import Postgres
import Store
import TestSupport
import Testing

/// The self-contained binary: embedded migrations, `--print` for psql, `--baseline` for a
/// schema other tools applied, and the services' refusal of a schema that does not fit.
@Suite("self-contained migrations, end to end")
struct MigrationToolingTests {
    static func diskFiles() throws -> [MigrationFile] {
        try MigrationFile.load(directory: Repository.root().appendingPathComponent("migrations"))
    }

    /// Runs psql on `database` with `arguments`, stopping at the first error.
    static func psql(_ database: TestDatabase, _ arguments: [String]) throws -> Output {
        let bin = ProcessInfo.processInfo.environment["LETHE_TEST_PG_BIN"].map { $0 + "/psql" }
        let psql = bin.flatMap { FileManager.default.isExecutableFile(atPath: $0) ? $0 : nil } ?? "/usr/bin/psql"
        let result = try ExternalTool.run(psql, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database.url] + arguments)
        return Output(status: result.status, output: result.output)
    }

    /// A child's exit status and its output, both streams together.
    struct Output {
        var status: Int32
        var output: String
        var stdout: String { output }
    }

    /// Applies `files` as another tool would: each in one transaction, recording nothing.
    static func applyWithPsql(_ database: TestDatabase, _ files: [MigrationFile]) throws {
        for file in files {
            let result = try psql(
                database, ["-1", "-f", Repository.root().appendingPathComponent("migrations/\(file.fileName)").path])
            #expect(result.status == 0, "\(file.fileName): \(result.output)")
        }
    }

    static func recorded(_ database: TestDatabase) throws -> [Int: String] {
        let connection = try database.connect()
        defer { connection.close() }
        guard try connection.scalar("SELECT to_regclass('lethe.schema_migrations') IS NOT NULL", as: Bool.self) else {
            return [:]
        }
        var rows: [Int: String] = [:]
        for row in try connection.query("SELECT version, checksum FROM lethe.schema_migrations") {
            let (version, checksum) = try row.decode((Int, String).self)
            rows[version] = checksum
        }
        return rows
    }

    static func expectFullyRecorded(_ database: TestDatabase) throws {
        let disk = try diskFiles()
        #expect(try recorded(database) == Dictionary(uniqueKeysWithValues: disk.map { ($0.version, $0.checksum) }))
        let again = try LetheProcess.run(["migrate", "--database-url", database.url])
        #expect(again.status == 0, "\(again.output)")
        #expect(again.stdout.contains("nothing to apply"), "\(again.output)")
        let status = try LetheProcess.run(["migrate", "--status", "--database-url", database.url])
        #expect(status.stdout.contains("\(disk.count) applied, 0 pending"), "\(status.output)")
    }

    @Test func binaryCopiedAloneIntoAnEmptyDirectoryMigrates() async throws {
        try await TestDatabase.with { database in
            try await offThePool {
                try withTemporaryDirectory { directory in
                    let copy = directory + "/lethe"
                    try FileManager.default.copyItem(atPath: try LetheProcess.executablePath(), toPath: copy)
                    #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["lethe"])
                    let env = ["LETHE_BIN": copy]
                    func lethe(_ arguments: [String]) throws -> Output {
                        let environment = ProcessInfo.processInfo.environment.filter {
                            !($0.key.hasPrefix("LETHE_") || $0.key.hasPrefix("PG"))
                        }.merging(env) { $1 }
                        let result = try ExternalTool.run(
                            copy, arguments, directory: directory, environment: environment)
                        return Output(status: result.status, output: result.output)
                    }
                    let first = try lethe(["migrate", "--database-url", database.url])
                    #expect(first.status == 0, "\(first.output)")
                    #expect(first.stdout.contains("applied 0001_lethe_schema.sql"))
                    let second = try lethe(["migrate", "--database-url", database.url])
                    #expect(second.stdout.contains("nothing to apply"), "\(second.output)")
                    let status = try lethe(["migrate", "--status", "--database-url", database.url])
                    #expect(status.stdout.hasPrefix("migrations embedded in this binary"), "\(status.output)")
                    // The same checksums as the files on disk.
                    try Self.expectFullyRecorded(database)
                }
            }
        }
    }

    @Test func printedSQLAppliedWithPsqlIsRecognised() async throws {
        try await TestDatabase.with { database in
            try await offThePool {
                // --print needs no database.
                let printed = try LetheProcess.run(["migrate", "--print"])
                #expect(printed.status == 0, "\(printed.output)")
                #expect(printed.stdout.contains("-- ==== 0001_lethe_schema.sql: version 1, sha256 "))
                #expect(printed.stdout.contains("INSERT INTO lethe.schema_migrations"))
                try withTemporaryDirectory { directory in
                    let file = directory + "/lethe.sql"
                    try printed.stdout.write(toFile: file, atomically: true, encoding: .utf8)
                    let applied = try Self.psql(database, ["-f", file])
                    #expect(applied.status == 0, "\(applied.output)")
                }
                try Self.expectFullyRecorded(database)
            }
        }
    }

    @Test func printFromAVersionBringsAPartlyMigratedSchemaUpToDate() async throws {
        try await TestDatabase.with { database in
            try await offThePool {
                let disk = try Self.diskFiles()
                let directory = try Repository.copyOfMigrations()
                defer { try? FileManager.default.removeItem(at: directory) }
                for file in disk where file.version > 4 {
                    try FileManager.default.removeItem(at: directory.appendingPathComponent(file.fileName))
                }
                let partial = try LetheProcess.run([
                    "migrate", "--database-url", database.url, "--migrations", directory.path,
                ])
                #expect(partial.status == 0, "\(partial.output)")
                let printed = try LetheProcess.run(["migrate", "--print", "--from", "4"])
                #expect(!printed.stdout.contains("0004_archives.sql:"))
                #expect(printed.stdout.contains("-- ==== 0005_archive_deletion_progress.sql: version 5"))
                let file = directory.appendingPathComponent("rest.sql").path
                try printed.stdout.write(toFile: file, atomically: true, encoding: .utf8)
                let applied = try Self.psql(database, ["-f", file])
                #expect(applied.status == 0, "\(applied.output)")
                try Self.expectFullyRecorded(database)
                let none = try LetheProcess.run(["migrate", "--print", "--from", "\(disk.last?.version ?? 0)"])
                #expect(none.stdout.contains("nothing to print"))
            }
        }
    }

    @Test func baselineRecordsASchemaAppliedByAnotherTool() async throws {
        try await TestDatabase.with { database in
            try await offThePool {
                let disk = try Self.diskFiles()
                try Self.applyWithPsql(database, disk)
                #expect(try Self.recorded(database).isEmpty)
                let highest = disk.last?.version ?? 0
                let baseline = try LetheProcess.run([
                    "migrate", "--baseline", "\(highest)", "--database-url", database.url,
                ])
                #expect(baseline.status == 0, "\(baseline.output)")
                #expect(baseline.stdout.contains("recorded 0001_lethe_schema.sql as applied"))
                try Self.expectFullyRecorded(database)
                let again = try LetheProcess.run([
                    "migrate", "--baseline", "\(highest)", "--database-url", database.url,
                ])
                #expect(again.status == 0, "\(again.output)")
                #expect(again.stdout.contains("nothing to record"))
            }
        }
    }

    @Test func baselineOfAPartOfTheMigrationsThenMigrateAppliesTheRest() async throws {
        try await TestDatabase.with { database in
            try await offThePool {
                let disk = try Self.diskFiles()
                try Self.applyWithPsql(database, disk.filter { $0.version <= 4 })
                let baseline = try LetheProcess.run(["migrate", "--baseline", "4", "--database-url", database.url])
                #expect(baseline.status == 0, "\(baseline.output)")
                #expect(try Self.recorded(database).keys.sorted() == [1, 2, 3, 4])
                let rest = try LetheProcess.run(["migrate", "--database-url", database.url])
                #expect(rest.stdout.contains("applied 0005_archive_deletion_progress.sql"), "\(rest.output)")
                try Self.expectFullyRecorded(database)
            }
        }
    }

    @Test func baselineRefusesAMismatchedSchemaAndRecordsNothing() async throws {
        try await TestDatabase.with { database in
            try await offThePool {
                let disk = try Self.diskFiles()
                let highest = disk.last?.version ?? 0
                try Self.applyWithPsql(database, disk.filter { $0.version <= 4 })

                // Migration 5 was never applied: its columns are missing.
                let missing = try LetheProcess.run(["migrate", "--baseline", "5", "--database-url", database.url])
                #expect(missing.status == 2, "\(missing.output)")
                #expect(
                    missing.stderr.contains(
                        "0005_archive_deletion_progress.sql: missing column lethe.archive_jobs.delete_cursor"),
                    "\(missing.output)")
                #expect(missing.stderr.contains("Nothing was recorded"))

                // Migration 4 was applied but is not baselined: baselining 3 would apply it twice.
                let ahead = try LetheProcess.run(["migrate", "--baseline", "3", "--database-url", database.url])
                #expect(ahead.status == 2, "\(ahead.output)")
                #expect(ahead.stderr.contains("already holds what 0004_archives.sql creates"), "\(ahead.output)")
                #expect(try Self.recorded(database).isEmpty)

                // A view dropped by hand, a function edited by hand.
                try Self.applyWithPsql(database, disk.filter { $0.version > 4 })
                let connection = try database.connect()
                defer { connection.close() }
                try connection.execute("DROP VIEW lethe.registry_in_force")
                try connection.execute(
                    "CREATE OR REPLACE FUNCTION lethe.lock_account_of_change() RETURNS trigger "
                        + "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$")
                let edited = try LetheProcess.run([
                    "migrate", "--baseline", "\(highest)", "--database-url", database.url,
                ])
                #expect(edited.status == 2, "\(edited.output)")
                #expect(edited.stderr.contains("0007_registry_source.sql: missing view lethe.registry_in_force"))
                #expect(
                    edited.stderr.contains(
                        "0008_registry_keys.sql: function lethe.lock_account_of_change() differs: expected"
                    ),
                    "\(edited.output)")
                #expect(try Self.recorded(database).isEmpty)
            }
        }
    }

    @Test func baselineRefusesInconsistentRecords() async throws {
        try await withMigratedDatabase { database in
            try await offThePool {
                let highest = try Self.diskFiles().last?.version ?? 0
                let connection = try database.connect()
                defer { connection.close() }
                try connection.execute("UPDATE lethe.schema_migrations SET checksum = 'feedface' WHERE version = 2")
                let result = try LetheProcess.run([
                    "migrate", "--baseline", "\(highest)", "--database-url", database.url,
                ])
                #expect(result.status == 2, "\(result.output)")
                #expect(
                    result.stderr.contains("0002_task_queue.sql is recorded with checksum feedface"), "\(result.output)"
                )
                try connection.execute("DELETE FROM lethe.schema_migrations WHERE version > 2")
                let above = try LetheProcess.run(["migrate", "--baseline", "1", "--database-url", database.url])
                #expect(above.status == 2)
                #expect(above.stderr.contains("is already recorded, above version 1"), "\(above.output)")
                #expect(try connection.scalar("SELECT count(*) FROM lethe.schema_migrations", as: Int.self) == 2)
            }
        }
    }

    @Test func badFlagsExitTwo() throws {
        let from = try LetheProcess.run(["migrate", "--from", "3"])
        #expect(from.status == 2)
        #expect(from.stderr.contains("--from goes with --print"))
        let negative = try LetheProcess.run(["migrate", "--print", "--from", "-1"])
        #expect(negative.status == 2)
        let zero = try LetheProcess.run(["migrate", "--baseline", "0"])
        #expect(zero.status == 2)
        #expect(zero.stderr.contains("--baseline 0 is not allowed"))
        let both = try LetheProcess.run(["migrate", "--print", "--status"])
        #expect(both.status == 2)
        #expect(both.stderr.contains("cannot be combined"))
        let unknown = try LetheProcess.run([
            "migrate", "--baseline", "77", "--database-url", "postgresql://x@127.0.0.1:1/y",
        ])
        #expect(unknown.status == 2, "\(unknown.output)")
        #expect(unknown.stderr.contains("--baseline 77 is not a migration version of this binary; accepted: 1, 2"))
    }

    @Test(arguments: ["worker", "coordinator", "run"])
    func servicesRefuseAnUnmigratedOrNewerSchema(_ command: String) async throws {
        try await TestDatabase.with { database in
            try await offThePool {
                let highest = try Self.diskFiles().last?.version ?? 0
                let unmigrated = try LetheProcess.run([command, "--until-idle", "--database-url", database.url])
                #expect(unmigrated.status == 1, "\(unmigrated.output)")
                #expect(unmigrated.stderr.contains("schema lethe is not migrated"), "\(unmigrated.output)")
                #expect(unmigrated.stderr.contains("needs version \(highest): run `lethe migrate` first"))

                #expect(try LetheProcess.run(["migrate", "--database-url", database.url]).status == 0)
                let connection = try database.connect()
                defer { connection.close() }
                try connection.execute(
                    "INSERT INTO lethe.schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')")
                let newer = try LetheProcess.run([command, "--until-idle", "--database-url", database.url])
                #expect(newer.status == 1, "\(newer.output)")
                #expect(
                    newer.stderr.contains(
                        "schema lethe is at version 9999, newer than this binary knows (up to \(highest))"),
                    "\(newer.output)")
                #expect(newer.stderr.contains("upgrade lethe"))
                // Nothing was started: no process registered, no registry synced.
                #expect(try connection.scalar("SELECT count(*) FROM lethe.registry_source", as: Int.self) == 0)
            }
        }
    }
}
