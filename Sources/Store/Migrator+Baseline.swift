import Postgres

extension Migrator {
    /// What `baseline` recorded: the migrations newly recorded and those already recorded.
    public struct BaselineReport: Sendable {
        public var recorded: [MigrationFile]
        public var alreadyRecorded: [MigrationFile]
    }

    /// Records migrations up to `version` as applied, with their checksums, for a schema that
    /// psql, dbmate or Flyway applied: after checking, under the migration lock and in one
    /// transaction, that what is recorded agrees with these files and that schema `lethe`
    /// defines exactly what migrations 1…`version` define (`SchemaFingerprint`), and not
    /// already what the next migration does. Throws `BaselineError` (writing nothing) when
    /// any check fails.
    ///
    /// The reference is built, not derived: under a savepoint, the existing schema is dropped,
    /// the migrations are applied as `apply` runs them, creating a fresh `lethe`, and its
    /// fingerprint is read after each; rolling back to the savepoint undoes all of it (the
    /// drop, every object created, any role a migration created).
    public func baseline(_ connection: Connection, through version: Int) throws -> BaselineReport {
        guard files.contains(where: { $0.version == version }) else {
            throw BaselineError.unknownVersion(version, known: files.map(\.version))
        }
        // The migration lock is a session lock: a transaction pooler would keep it on a pooled
        // server connection (no exclusion, and a lock left behind hangs later runs).
        if try connection.isThroughPooler() { throw MigrationError.throughPooler }
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
            let next = files.first { $0.version > version }
            try Self.refuseTransactionControl(in: through + (next.map { [$0] } ?? []))
            // Every definition is printed schema-qualified: the same text in both schemas.
            try connection.setLocalSearchPath()
            let existing = try SchemaFingerprint.read(connection)
            let built = try fingerprints(after: through + (next.map { [$0] } ?? []), on: connection)
            let expected = built[through.count - 1]
            // An object missing whole is named once, not once more for its grants.
            let differing = existing.differences(from: expected).filter { key in
                let definition = SchemaFingerprint.Key(kind: key.kind, name: key.name, aspect: "definition")
                return key.aspect != "grants" || existing.entries[definition] != nil
                    || expected.entries[definition] == nil
            }
            if let next {
                // A schema further on than `version` first: what next changed would read as mismatches.
                let after = built[through.count]
                let ahead = after.entries.keys.filter {
                    after.entries[$0] != expected.entries[$0] && existing.entries[$0] == after.entries[$0]
                }.sorted {  // columns last: their tables say more
                    ($0.kind == "column" ? 1 : 0, $0.kind, $0.name, $0.aspect)
                        < ($1.kind == "column" ? 1 : 0, $1.kind, $1.name, $1.aspect)
                }
                guard ahead.isEmpty else {
                    throw BaselineError.schemaAhead(version, next: next.fileName, objects: ahead.map(\.description))
                }
            }
            guard differing.isEmpty else {
                throw BaselineError.schemaMismatch(
                    version,
                    differing.map { key in
                        // The migration that last defined the object as expected, if any.
                        let last = through.indices.last { index in
                            index == 0 || built[index - 1].entries[key] != expected.entries[key]
                        }
                        let origin = expected.entries[key] == nil ? nil : last.map { through[$0].fileName }
                        return (origin.map { "\($0): " } ?? "") + existing.describe(key, expected: expected)
                    })
            }
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

extension Migrator {
    /// The fingerprint of schema `lethe` after each of `files`, applied in order as `apply`
    /// applies them to a fresh schema, the existing one dropped meanwhile; all undone before
    /// returning (rolled back to a savepoint of the caller's transaction). Dropped rather than
    /// renamed away: a migration may look an object up by name alone (0004 does, for a
    /// constraint), and would find the old one.
    fileprivate func fingerprints(
        after files: [MigrationFile], on connection: Connection
    ) throws
        -> [SchemaFingerprint]
    {
        try connection.execute("SAVEPOINT lethe_baseline")
        do {
            // DROP locks every table of the schema until the transaction ends: wait for
            // running services' transactions a bounded time rather than forever.
            _ = try connection.query("SELECT set_config('lock_timeout', '60s', true)")
            try connection.execute("DROP SCHEMA IF EXISTS lethe CASCADE")
            var result: [SchemaFingerprint] = []
            for file in files {
                try run(file, on: connection)
                try connection.setLocalSearchPath()
                result.append(try SchemaFingerprint.read(connection))
            }
            try connection.execute("ROLLBACK TO SAVEPOINT lethe_baseline")
            try connection.execute("RELEASE SAVEPOINT lethe_baseline")
            return result
        } catch {
            if !connection.isBroken, connection.isInTransaction {
                _ = try? connection.execute("ROLLBACK TO SAVEPOINT lethe_baseline")
            }
            throw error
        }
    }
}

extension Connection {
    /// search_path = pg_catalog until the transaction ends, so catalog functions print every
    /// name of schema `lethe` qualified.
    fileprivate func setLocalSearchPath() throws {
        _ = try query("SELECT set_config('search_path', 'pg_catalog', true)")
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
                + "(lethe migrate --print --from N | psql), restore what differs, or baseline a lower version"
        case .schemaAhead(let version, let next, let objects):
            return "cannot baseline version \(version): schema lethe already holds what \(next) creates ("
                + Self.list(objects) + "); baseline the highest version that was applied. Nothing was recorded"
        }
    }

    private static func list(_ items: [String]) -> String {
        let shown = items.prefix(10).joined(separator: "; ")
        return items.count > 10 ? shown + "; and \(items.count - 10) more" : shown
    }
}
