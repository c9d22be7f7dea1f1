import Foundation
import Postgres

/// Writes a `SchemaModel` out: the tables (with foreign keys), the audit triggers that copy
/// every deleted row into `safety.deleted`, and Lethe's YAML configuration.
struct SchemaWriter {
    var schema: SchemaModel
    var options: SafetyOptions

    static func q(_ name: String) -> String { SQLIdentifier.quote(name) }

    // MARK: - Tables

    var ddl: String {
        var sql = "CREATE SCHEMA IF NOT EXISTS app;\n"
        for name in Set(schema.types.map(\.root.schema)) where name != "app" {
            sql += "CREATE SCHEMA \(Self.q(name));\n"
        }
        sql += """
            CREATE TABLE app.blobs (id bigint PRIMARY KEY, account_id \(schema.accountType) NOT NULL,
                                    created_at timestamptz NOT NULL DEFAULT now());

            """
        for type in schema.types {
            for table in type.tables { sql += create(table, of: type) }
        }
        return sql
    }

    /// The SQL type of `column` in `table`.
    func columnType(_ column: String, in table: TableModel, of type: EntityModel) -> String {
        if column == table.account { return schema.accountType }
        if column == "shard" || column == "parent_shard" { return "integer" }
        if column == table.idColumn { return table.keyType.rawValue }
        if column == "user_id" { return "bigint" }
        if column == "parent_id", let parent = table.parentIndex {
            return type.tables[parent].keyType.rawValue
        }
        preconditionFailure("no type for \(column)")
    }

    private func create(_ table: TableModel, of type: EntityModel) -> String {
        var columns = (table.account.map { [$0] } ?? []) + table.keyColumns + table.parentColumns
        columns = columns.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        var lines = columns.map { "\(Self.q($0)) \(columnType($0, in: table, of: type)) NOT NULL" }
        if table.parentIndex == nil {
            lines.append("\(Self.q(type.clock)) \(type.clockType.rawValue)")
            lines.append("status text NOT NULL")
            lines.append("pinned boolean NOT NULL")
            if type.versions != nil { lines.append("item bigint NOT NULL") }
        }
        if let blob = table.blobColumn { lines.append("\(Self.q(blob)) bigint") }
        lines.append("PRIMARY KEY (\(table.keyColumns.map(Self.q).joined(separator: ", ")))")
        var extra = ""
        if let parentIndex = table.parentIndex {
            let parent = type.tables[parentIndex]
            let columns = table.parentColumns.map(Self.q).joined(separator: ", ")
            lines.append(
                "FOREIGN KEY (\(columns)) REFERENCES \(parent.quoted) "
                    + "(\(parent.keyColumns.map(Self.q).joined(separator: ", ")))")
            extra += "CREATE INDEX ON \(table.quoted) (\(columns));\n"
        } else {
            extra += "CREATE INDEX ON \(table.quoted) (\(Self.q(table.account!)), \(Self.q(type.clock)));\n"
        }
        if let blob = table.blobColumn { extra += "CREATE INDEX ON \(table.quoted) (\(Self.q(blob)));\n" }
        return "CREATE TABLE \(table.quoted) (\n  " + lines.joined(separator: ",\n  ") + "\n);\n" + extra
    }

    // MARK: - Audit

    /// `safety.initial` (rows before the run), `safety.deleted` (every deleted row with its
    /// transaction) and `safety.records` (which transaction wrote which deletion record).
    var auditDDL: String {
        var sql = """
            CREATE SCHEMA safety;
            CREATE TABLE safety.initial (tbl text NOT NULL, account text, key text NOT NULL, parent text, clock bigint,
                                         item text, status text, pinned boolean, blob text, row jsonb NOT NULL);
            CREATE TABLE safety.deleted (LIKE safety.initial, xid bigint NOT NULL DEFAULT txid_current());
            CREATE TABLE safety.records (xid bigint NOT NULL DEFAULT txid_current(), account_id text, entity_type text,
                                         total_rows bigint, blob_rows integer);
            CREATE FUNCTION safety.record() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO safety.records (account_id, entity_type, total_rows, blob_rows)
                VALUES (NEW.account_id, NEW.entity_type, NEW.total_rows, NEW.blob_rows);
                RETURN NEW;
            END $$;
            CREATE TRIGGER safety_record AFTER INSERT ON lethe.deletion_records
                FOR EACH ROW EXECUTE FUNCTION safety.record();

            """
        for (label, table, type) in allTables {
            let function = "safety.\(Self.q("audit_" + label))"
            sql += """
                CREATE FUNCTION \(function)() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    INSERT INTO safety.deleted (tbl, account, key, parent, clock, item, status, pinned, blob, row)
                    SELECT \(describe(label, table, type, alias: "OLD"));
                    RETURN OLD;
                END $$;
                CREATE TRIGGER safety_audit AFTER DELETE ON \(table.quoted) FOR EACH ROW EXECUTE FUNCTION \(function)();

                """
        }
        return sql
    }

    /// Copies every application row into `safety.initial`.
    var snapshot: String {
        allTables.map { label, table, type in
            "INSERT INTO safety.initial SELECT \(describe(label, table, type, alias: "a")) FROM \(table.quoted) AS a;"
        }.joined(separator: "\n")
    }

    /// (label, table, type): `T.I` for table I of type T, `blobs` for the blob store.
    var allTables: [(String, TableModel, EntityModel?)] {
        var result: [(String, TableModel, EntityModel?)] = [("blobs", schema.blobTable, nil)]
        for (t, type) in schema.types.enumerated() {
            for (i, table) in type.tables.enumerated() { result.append(("\(t).\(i)", table, type)) }
        }
        return result
    }

    /// The row as the checker sees it: account, key and parent key as text (columns joined by
    /// `|`), the clock as microseconds since 1970 UTC (timestamp read as UTC; a date as the
    /// last microsecond of its UTC day: it expires only once the whole day is past).
    private func describe(_ label: String, _ table: TableModel, _ type: EntityModel?, alias a: String) -> String {
        func text(_ columns: [String]) -> String {
            columns.isEmpty
                ? "NULL" : "concat_ws('|', " + columns.map { "\(a).\(Self.q($0))::text" }.joined(separator: ", ") + ")"
        }
        let isRoot = type != nil && table.parentIndex == nil
        var clock = "NULL::bigint"
        if isRoot, let type {
            let column = "\(a).\(Self.q(type.clock))"
            let utc =
                switch type.clockType {
                case .timestamptz: column
                case .timestamp, .precise: "(\(column) AT TIME ZONE 'UTC')"
                case .date: "((\(column) + 1)::timestamp AT TIME ZONE 'UTC' - interval '1 microsecond')"
                }
            clock = "(extract(epoch FROM \(utc)) * 1000000)::bigint"
        }
        return [
            "'\(label)'", table.account.map { "\(a).\(Self.q($0))::text" } ?? "NULL", text(table.keyColumns),
            table.parentIndex == nil ? "NULL" : text(table.parentColumns), clock,
            isRoot && type?.versions != nil ? "\(a).item::text" : "NULL",
            isRoot ? "\(a).status" : "NULL", isRoot ? "\(a).pinned" : "NULL",
            table.blobColumn.map { "\(a).\(Self.q($0))::text" } ?? "NULL", "to_jsonb(\(a))",
        ].joined(separator: ", ")
    }

    // MARK: - Configuration

    func yaml(databaseURL: String) -> String {
        var lines = [
            "database: { url: \"\(databaseURL)\" }",
            "coordinator: { tick_interval: 200ms }",
            "worker: { poll_interval: 200ms, concurrency: 4 }",
        ]
        // A store nothing references is refused (every blob would be an orphan): only when used.
        if schema.types.contains(where: { $0.tables.contains { $0.blobColumn != nil } }) {
            lines += ["blob_stores:", "  blobs: { table: app.blobs, key: id, account: account_id }"]
        }
        lines.append("entity_types:")
        for type in schema.types {
            let root = type.root
            lines.append("  \(type.name):")
            lines.append("    table: \(root.schema).\(root.name)")
            lines.append("    key: \(key(root))")
            lines.append("    account: \(root.account!)")
            lines.append("    clock: \(type.clock)")
            if let predicate = type.guardPredicate.sql(keyColumn: Self.q(root.idColumn!)) {
                let escaped = predicate.replacingOccurrences(of: "\\", with: "\\\\")
                    .replacingOccurrences(of: "\"", with: "\\\"")
                lines.append("    where: \"\(escaped)\"")
            }
            lines.append(
                "    interval: { default: \(type.defaultInterval.yaml), min: \(type.minimum.yaml), "
                    + "max: \(type.maximum.yaml) }")
            lines.append("    batch_size: \(type.batchSize)")
            if !type.deletes { lines.append("    delete: false") }
            if let versions = type.versions {
                lines.append("    versions: { item: \(versions.item), keep: \(versions.keep) }")
            }
            if let blob = root.blobColumn { lines.append("    blobs: [ { column: \(blob) } ]") }
            lines += children(of: 0, in: type, indent: "    ")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private func children(of parent: Int, in type: EntityModel, indent: String) -> [String] {
        let below = type.tables.indices.filter { type.tables[$0].parentIndex == parent }
        guard !below.isEmpty else { return [] }
        var lines = ["\(indent)children:"]
        for index in below {
            let table = type.tables[index]
            lines.append("\(indent)  - table: \(table.schema).\(table.name)")
            if !table.isJoin { lines.append("\(indent)    key: \(key(table))") }
            lines.append("\(indent)    parent: \(parentKey(table))")
            if options.newSyntax, let account = table.account, !table.isJoin {
                lines.append("\(indent)    account: \(account)")
            }
            if let blob = table.blobColumn { lines.append("\(indent)    blobs: [ { column: \(blob) } ]") }
            lines += children(of: index, in: type, indent: indent + "    ")
        }
        return lines
    }

    /// New syntax: the whole key. Old syntax: the id column alone — on a (account, id) or
    /// (shard, id) key that is the dangerous form today's code accepts (issue 14 defect 1).
    private func key(_ table: TableModel) -> String {
        options.newSyntax ? list(table.keyColumns) : table.idColumn!
    }

    private func parentKey(_ table: TableModel) -> String {
        options.newSyntax ? list(table.parentColumns) : "parent_id"
    }

    private func list(_ columns: [String]) -> String {
        columns.count == 1 ? columns[0] : "[" + columns.joined(separator: ", ") + "]"
    }
}
