import ArgumentParser
import Foundation
import LetheConfiguration
import Postgres
import Retention
import Store

/// `lethe migrate`: applies `migrations/*.sql` in order under an advisory lock.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending migrations to schema lethe.",
        discussion: """
            Applies migrations/NNNN_name.sql files in version order, each in its own \
            transaction, under a PostgreSQL advisory lock (concurrent runs wait and apply \
            each file exactly once). Records version, name and SHA-256 checksum in \
            lethe.schema_migrations, and refuses to run (exit 2) when an applied file was \
            edited since.
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(help: "List applied and pending migrations; change nothing.")
    var status = false

    @Flag(name: .customLong("dry-run"), help: "Print the SQL of pending migrations; change nothing.")
    var dryRun = false

    @Option(
        name: .customLong("migrations"),
        help: ArgumentHelp(
            "Directory of NNNN_name.sql files (default: $LETHE_MIGRATIONS_DIR, migrations.directory, ./migrations).",
            valueName: "dir"))
    var migrationsDirectory: String?

    func validate() throws {
        if status && dryRun { throw ValidationError("--status and --dry-run cannot be combined; pick one") }
    }

    func run() async throws {
        let context = try CommandContext(global, label: "lethe.migrate")
        let directory = try MigrationsDirectory.resolve(
            flag: migrationsDirectory, configured: context.configuration.migrationsDirectory)
        let migrator = Migrator(files: try MigrationFile.load(directory: directory), logger: context.logger)
        let (status, dryRun) = (self.status, self.dryRun)
        try await context.withDatabase(name: "lethe-migrate") { connection in
            if status {
                print(MigrationReport.status(try migrator.status(connection), directory: directory.path))
            } else if dryRun {
                print(MigrationReport.dryRun(try migrator.pending(connection)))
            } else {
                let applied = try migrator.apply(connection) { file, elapsed in
                    print("applied \(file.fileName) in \(elapsed.milliseconds) ms")
                }
                let version = migrator.files.last?.version ?? 0
                print(
                    applied.isEmpty
                        ? "nothing to apply: schema lethe is at version \(version)"
                        : "schema lethe is at version \(version) (\(applied.count) applied now)")
            }
        }
    }
}

/// Text output of `lethe migrate`.
enum MigrationReport {
    static func status(_ entries: [Migrator.Entry], directory: String) -> String {
        var table = TextTable("VERSION", "NAME", "STATE", "APPLIED AT")
        for entry in entries {
            table.add(
                String(format: "%04d", entry.version), entry.name, entry.state.rawValue,
                entry.appliedAt.map(HumanText.timestamp) ?? "-")
        }
        let counts = Dictionary(grouping: entries, by: \.state).mapValues(\.count)
        var summary = "\(counts[.applied] ?? 0) applied, \(counts[.pending] ?? 0) pending"
        if let modified = counts[.modified] { summary += ", \(modified) edited after apply (refused)" }
        if let missing = counts[.missingFile] { summary += ", \(missing) applied with no file" }
        return "migrations in \(directory)\n\n\(table.rendered)\n\n\(summary)"
    }

    static func dryRun(_ pending: [MigrationFile]) -> String {
        guard !pending.isEmpty else { return "-- nothing to apply" }
        var out = ""
        for file in pending {
            out += "-- \(file.fileName) (pending; would run in its own transaction)\n"
            out += file.sql.hasSuffix("\n") ? file.sql : file.sql + "\n"
            out += "\n"
        }
        out += "-- \(pending.count) pending migration\(pending.count == 1 ? "" : "s"); nothing was applied"
        return out
    }
}
