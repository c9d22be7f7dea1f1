/// The SQL of `lethe migrate --print`: migrations after a version, each in its own
/// transaction with the row `lethe migrate` records for it, so that a schema applied with
/// `psql -v ON_ERROR_STOP=1` counts as migrated.
public enum MigrationScript {
    /// Every file with a version above `after` (0: all), in order.
    public static func render(_ files: [MigrationFile], after: Int) -> String {
        let selected = files.filter { $0.version > after }
        var out = "-- Lethe migrations after version \(after), printed by `lethe migrate --print`.\n"
        guard let last = selected.last else {
            return out + "-- nothing to print: no migration is numbered above \(after)\n"
        }
        out += """
            -- Each runs in its own transaction and inserts its row into lethe.schema_migrations, as
            -- `lethe migrate` would. Apply with: psql -X -v ON_ERROR_STOP=1 -f FILE
            -- Brings the schema to version \(last.version) (\(selected.count) migration\(selected.count == 1 ? "" : "s")).


            """
        for file in selected {
            out += "-- ==== \(file.fileName): version \(file.version), sha256 \(file.checksum) ====\n"
            out += "BEGIN;\n\n"
            out += file.sql.hasSuffix("\n") ? file.sql : file.sql + "\n"
            out += "\n-- ==== end of \(file.fileName) ====\n"
            out += "INSERT INTO lethe.schema_migrations (version, name, checksum)\n"
            out += "VALUES (\(file.version), '\(file.name)', '\(file.checksum)');\n"
            out += "COMMIT;\n\n"
        }
        return out
    }
}
