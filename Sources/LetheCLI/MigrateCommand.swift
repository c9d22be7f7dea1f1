import ArgumentParser
import Foundation
import LetheConfiguration
import Postgres
import Retention
import Store

/// `lethe migrate`: applies the migrations embedded in the binary (or a directory's) in order
/// under an advisory lock; prints them for other tools; records a schema they applied.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending migrations to schema lethe.",
        discussion: """
            Applies the migrations embedded in this binary (or the NNNN_name.sql files of \
            --migrations DIR) in version order, each in its own transaction, under a PostgreSQL \
            advisory lock (concurrent runs wait and apply each exactly once). Records version, \
            name and SHA-256 checksum in lethe.schema_migrations, and refuses to run (exit 2) \
            when an applied migration was edited since.

            --print writes the SQL, with the rows lethe.schema_migrations needs, for psql \
            (no database needed). --baseline N records migrations up to N that psql, dbmate or \
            Flyway applied, after checking that schema lethe defines exactly what they define \
            (built under a rolled-back savepoint and compared: columns, constraints, indexes, \
            triggers, views, functions, grants; extra indexes are allowed).
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(help: "List applied and pending migrations; change nothing.")
    var status = false

    @Flag(name: .customLong("dry-run"), help: "Print the SQL of pending migrations; change nothing.")
    var dryRun = false

    @Flag(
        name: .customLong("print"),
        help: "Write the SQL of the migrations (after --from) with their bookkeeping rows to stdout, for psql.")
    var printSQL = false

    @Option(
        name: .customLong("from"),
        help: ArgumentHelp(
            "With --print: only migrations numbered above n, for a schema already at version n (default 0: all).",
            valueName: "n"))
    var from: Int?

    @Option(
        name: .customLong("baseline"),
        help: ArgumentHelp(
            "Record migrations 1…n as applied (another tool applied them); refused unless the schema matches.",
            valueName: "n"))
    var baseline: Int?

    @Option(
        name: .customLong("migrations"),
        help: ArgumentHelp(
            "Directory of NNNN_name.sql files to use instead of the embedded ones "
                + "(default: $LETHE_MIGRATIONS_DIR, migrations.directory).",
            valueName: "dir"))
    var migrationsDirectory: String?

    func validate() throws {
        let modes = [
            ("--status", status), ("--dry-run", dryRun), ("--print", printSQL), ("--baseline", baseline != nil),
        ]
        .filter { $0.1 }.map { $0.0 }
        if modes.count > 1 { throw ValidationError("\(modes.joined(separator: " and ")) cannot be combined; pick one") }
        if let from {
            guard printSQL else { throw ValidationError("--from goes with --print") }
            guard from >= 0 else {
                throw ValidationError("--from \(from) is not allowed; expected a version of 0 or more")
            }
        }
        if let baseline, baseline < 1 {
            throw ValidationError("--baseline \(baseline) is not allowed; expected a migration version of 1 or more")
        }
    }

    func run() async throws {
        let context = try CommandContext(global, label: "lethe.migrate")
        let migrations = try MigrationSet.resolve(
            flag: migrationsDirectory, configured: context.configuration.migrationsDirectory)
        if printSQL {
            FileHandle.standardOutput.write(Data(MigrationScript.render(migrations.files, after: from ?? 0).utf8))
            return
        }
        if let baseline, !migrations.files.contains(where: { $0.version == baseline }) {
            throw BaselineError.unknownVersion(baseline, known: migrations.files.map(\.version))  // before connecting
        }
        let migrator = Migrator(files: migrations.files, logger: context.logger)
        let (status, dryRun, baseline) = (self.status, self.dryRun, self.baseline)
        try await context.withDatabase(name: "lethe-migrate") { connection in
            if status {
                print(MigrationReport.status(try migrator.status(connection), origin: migrations.origin))
            } else if dryRun {
                print(MigrationReport.dryRun(try migrator.pending(connection)))
            } else if let baseline {
                print(MigrationReport.baseline(try migrator.baseline(connection, through: baseline), version: baseline))
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
    static func status(_ entries: [Migrator.Entry], origin: String) -> String {
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
        return "\(origin)\n\n\(table.rendered)\n\n\(summary)"
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

    static func baseline(_ report: Migrator.BaselineReport, version: Int) -> String {
        var lines = report.recorded.map { "recorded \($0.fileName) as applied (schema checked)" }
        if !report.alreadyRecorded.isEmpty {
            lines.append("already recorded: \(report.alreadyRecorded.map(\.fileName).joined(separator: ", "))")
        }
        lines.append(
            report.recorded.isEmpty
                ? "nothing to record: migrations up to version \(version) were already recorded"
                : "schema lethe is recorded at version \(version); `lethe migrate` applies what follows")
        return lines.joined(separator: "\n")
    }
}
