import Postgres

extension Migrator {
    /// What `baseline` recorded: the migrations newly recorded and those already recorded.
    public struct BaselineReport: Sendable {
        public var recorded: [MigrationFile]
        public var alreadyRecorded: [MigrationFile]
    }

    /// Records migrations up to `version` as applied, with their checksums, for a schema that
    /// psql, dbmate or Flyway applied: after checking, under the migration lock and in one
    /// transaction, that what is recorded agrees with these files, that the schema holds every
    /// object those migrations create (each function with its body), and none that the next
    /// migration creates. Throws `BaselineError` (writing nothing) when any check fails.
    public func baseline(_ connection: Connection, through version: Int) throws -> BaselineReport {
        guard files.contains(where: { $0.version == version }) else {
            throw BaselineError.unknownVersion(version, known: files.map(\.version))
        }
        try connection.advisoryLock(Self.lockKey)
        defer { _ = try? connection.advisoryUnlock(Self.lockKey) }
        return try connection.withTransaction { connection in
            let applied = try appliedMigrations(connection)
            var inconsistent: [String] = []
            for (recorded, record) in applied.sorted(by: { $0.key < $1.key }) {
                guard let file = files.first(where: { $0.version == recorded }) else {
                    inconsistent.append(
                        "version \(recorded) (\(record.name)) is recorded but this binary has no such migration")
                    continue
                }
                if recorded > version {
                    inconsistent.append("\(file.fileName) is already recorded, above version \(version)")
                } else if record.checksum != file.checksum {
                    inconsistent.append(
                        "\(file.fileName) is recorded with checksum \(record.checksum.prefix(12))…, "
                            + "this binary's is \(file.checksum.prefix(12))…")
                }
            }
            guard inconsistent.isEmpty else { throw BaselineError.inconsistentRecords(version, inconsistent) }

            let through = files.filter { $0.version <= version }
            let signature = MigrationSignature(after: through)
            let catalog = try SchemaCatalog.read(connection)
            // A schema further on than `version` first: its replaced functions would read as mismatches.
            if let next = files.first(where: { $0.version > version }) {
                var after = signature
                after.apply(next)
                var ahead = after.objects.keys.filter { signature.objects[$0] == nil && catalog.objects.contains($0) }
                for (function, body) in after.bodies where signature.bodies[function] != body {
                    if catalog.bodies[function]?.contains(body) == true { ahead.append(function) }
                }
                guard ahead.isEmpty else {
                    throw BaselineError.schemaAhead(
                        version, next: next.fileName, objects: ahead.sorted().map(\.description))
                }
            }
            let differences = catalog.differences(from: signature).map { difference in
                let name = files.first { $0.version == difference.version }?.fileName ?? "\(difference.version)"
                return "\(name): \(difference.problem)"
            }
            guard differences.isEmpty else { throw BaselineError.schemaMismatch(version, differences) }
            var report = BaselineReport(recorded: [], alreadyRecorded: [])
            for file in through {
                if applied[file.version] != nil {
                    report.alreadyRecorded.append(file)
                    continue
                }
                try connection.execute(
                    "INSERT INTO lethe.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    [file.version, file.name, file.checksum])
                report.recorded.append(file)
            }
            return report
        }
    }
}

/// Why `lethe migrate --baseline N` refused; nothing was recorded. Exit status 2.
public enum BaselineError: Error, Equatable, CustomStringConvertible {
    case unknownVersion(Int, known: [Int])
    case inconsistentRecords(Int, [String])
    case schemaMismatch(Int, [String])
    case schemaAhead(Int, next: String, objects: [String])

    public var description: String {
        switch self {
        case .unknownVersion(let version, let known):
            return "--baseline \(version) is not a migration version of this binary; accepted: "
                + (known.isEmpty ? "none" : known.map(String.init).joined(separator: ", "))
        case .inconsistentRecords(let version, let problems):
            return "cannot baseline version \(version): lethe.schema_migrations disagrees with this binary: "
                + Self.list(problems) + ". Nothing was recorded"
        case .schemaMismatch(let version, let problems):
            return "cannot baseline version \(version): schema lethe does not match the migrations up to it: "
                + Self.list(problems) + ". Nothing was recorded; apply the missing migrations first "
                + "(lethe migrate --print --from N | psql) or baseline a lower version"
        case .schemaAhead(let version, let next, let objects):
            return "cannot baseline version \(version): schema lethe already holds what \(next) creates ("
                + Self.list(objects) + "); baseline the highest version that was applied. Nothing was recorded"
        }
    }

    private static func list(_ items: [String]) -> String {
        let shown = items.prefix(12).joined(separator: "; ")
        return items.count > 12 ? shown + "; and \(items.count - 12) more" : shown
    }
}
