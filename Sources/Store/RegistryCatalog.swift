import Crypto
import Foundation
import Postgres
import Retention

/// A registry entry that does not match the live database: `path` is its configuration
/// key (`entity_types.conversations.clock`).
public struct RegistryError: Error, CustomStringConvertible {
    public var path: String
    public var message: String
    public var description: String { "key \(path): \(message)" }
}

/// Checks a registry against the database's catalog — tables and columns exist, clocks
/// are timestamps, predicates parse — and compiles its SQL.
public enum RegistryCatalog {
    struct Column {
        var name: String
        /// As `format_type` gives it, with its modifier (`character varying(20)`): for casts.
        var type: String
        /// Without the modifier (`timestamp with time zone` for `timestamptz(3)`): for checks.
        var baseType: String
        /// `pg_type.typcategory`: `N` numeric, `S` string…
        var category: String

        var compiled: CompiledColumn { CompiledColumn(name: name, type: type) }
    }

    struct Table {
        var label: String
        var sql: String
        var columns: [Column]
        /// The column sets of the primary key and every valid, non-partial unique index on
        /// plain columns: the sets of columns proven unique.
        var uniqueSets: [Set<String>]
        /// The index proving each of `uniqueSets` (its OID), in the same order.
        var uniqueIndexes: [Int64] = []

        func column(_ name: String, path: String) throws(RegistryError) -> Column {
            guard let column = columns.first(where: { $0.name == name }) else {
                throw RegistryError(
                    path: path,
                    message: "table \(label) has no column \"\(name)\"; its columns: "
                        + columns.map(\.name).joined(separator: ", "))
            }
            return column
        }

        /// `names` are unique in this table: a primary key or unique index on exactly them.
        func isUnique(_ names: [String]) -> Bool { uniqueSets.contains(Set(names)) }

        /// The OID of the index that proves `names` unique.
        func proof(_ names: [String]) -> Int64? {
            uniqueSets.firstIndex(of: Set(names)).map { uniqueIndexes[$0] }
        }

        /// The unique column sets, for error messages.
        var uniqueDescription: String {
            uniqueSets.isEmpty
                ? "it has no primary key or unique index"
                : "its unique keys: "
                    + uniqueSets.map { "(" + $0.sorted().joined(separator: ", ") + ")" }.joined(separator: ", ")
        }
    }

    public static func compile(_ registry: Registry, on connection: Connection) throws -> CompiledRegistry {
        var stores: [String: CompiledBlobStore] = [:]
        let retired = try retiredReferences(on: connection)
        for store in registry.blobStores {
            stores[store.name] = try compile(
                store, registry: registry, retired: retired[store.name] ?? [], on: connection)
        }
        var types: [String: CompiledEntityType] = [:]
        for type in registry.entityTypes {
            types[type.name] = try compile(type, on: connection)
        }
        return CompiledRegistry(registry: registry, entityTypes: types, blobStores: stores)
    }

    static func quoted(_ table: TableName) -> String {
        (table.schema.map { SQLIdentifier.quote($0) + "." } ?? "") + SQLIdentifier.quote(table.name)
    }

    static func table(_ name: TableName, path: String, on connection: Connection) throws -> Table {
        // Each process resolves an unqualified name with its own search_path (a role's
        // setting, PGOPTIONS): a worker could delete from another schema's table of that name.
        guard name.schema != nil else {
            let resolved: String? = try connection.query(
                "SELECT to_regclass($1)::text", [SQLIdentifier.quote(name.name)])[0].decode(String?.self, at: 0)
            throw RegistryError(
                path: path,
                message: "table \(name) is not schema-qualified; each process would resolve it with its own "
                    + "search_path: write schema.table"
                    + (resolved.map { " (here it resolves to \($0))" } ?? ""))
        }
        let sql = quoted(name)
        // The type for casts: as format_type gives it for built-in types (with its modifier),
        // schema-qualified for any other (a domain or extension type in any schema resolves
        // whatever the search_path of the statement that casts).
        let rows = try connection.query(
            """
            SELECT a.attname,
                   CASE WHEN n.nspname = 'pg_catalog' THEN format_type(a.atttypid, a.atttypmod)
                        ELSE quote_ident(n.nspname) || '.' || quote_ident(t.typname) END,
                   format_type(a.atttypid, NULL), t.typcategory::text
            FROM pg_attribute a
            JOIN pg_type t ON t.oid = a.atttypid
            JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """, [sql])
        guard rows.count > 0 else {
            throw RegistryError(
                path: path,
                message: "table \(name) does not exist (or has no columns); names are matched exactly, case-sensitive")
        }
        // A unique index of an inheritance parent does not cover its children, yet every
        // statement on the parent reaches them: such a table proves no key unique.
        let inheritors: String? = try connection.query(
            """
            SELECT string_agg(i.inhrelid::regclass::text, ', ' ORDER BY i.inhrelid::regclass::text)
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent
            WHERE i.inhparent = to_regclass($1) AND c.relkind <> 'p'
            """, [sql])[0].decode(String?.self, at: 0)
        if let inheritors {
            throw RegistryError(
                path: path,
                message:
                    "table \(name) has inheritance children (\(inheritors)): its unique indexes do not cover their "
                    + "rows, yet every statement on it reaches them; expected a plain or partitioned table "
                    + "(configure each inheriting table as an entity type of its own)")
        }
        // Unique indexes that prove what the statements' `=` compares: valid, not partial, on
        // plain columns, each with the column's own collation and its type's default operator class.
        let unique = try connection.query(
            """
            SELECT array_agg(a.attname::text ORDER BY a.attname), i.indexrelid::bigint
            FROM pg_index i
            CROSS JOIN LATERAL unnest(i.indkey::int2[], i.indcollation::oid[], i.indclass::oid[])
                WITH ORDINALITY AS k(attnum, coll, opclass, position)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            JOIN pg_opclass o ON o.oid = k.opclass
            WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
              AND i.indexprs IS NULL AND k.position <= i.indnkeyatts
            GROUP BY i.indexrelid
            HAVING bool_and(k.coll = a.attcollation AND o.opcdefault)
            """, [sql])
        return Table(
            label: name.description, sql: sql,
            columns: try rows.map {
                Column(
                    name: try $0.decode(at: 0), type: try $0.decode(at: 1), baseType: try $0.decode(at: 2),
                    category: try $0.decode(at: 3))
            },
            uniqueSets: try unique.map { Set(try $0.decode([String].self, at: 0)) },
            uniqueIndexes: try unique.map { try $0.decode(Int64.self, at: 1) })
    }

    /// Blob references the database knows of and no operator forgot (`lethe policy
    /// forget`): those of every entity type as last synced (a type that left the
    /// configuration, or a column removed before the next sync), and blob columns removed
    /// from types that stay (`lethe.retired_references`). Their rows may still hold blob
    /// keys, so those blobs stay referenced. Per store: (table, column).
    static func retiredReferences(on connection: Connection) throws -> [String: [(table: TableName, column: String)]] {
        var out: [String: [(table: TableName, column: String)]] = [:]
        let rows = try connection.query(
            "SELECT table_name, definition::text FROM lethe.entity_types WHERE forgotten_at IS NULL ORDER BY name")
        for row in rows {
            let (tableName, definition) = try row.decode((String, String).self)
            for reference in definitionReferences(table: tableName, definition: definition) {
                out[reference.store, default: []].append((reference.table, reference.column))
            }
        }
        for row in try connection.query(
            "SELECT store, table_name, column_name FROM lethe.retired_references WHERE forgotten_at IS NULL ORDER BY 1, 2, 3"
        ) {
            let (store, tableName, column) = try row.decode((String, String, String).self)
            if let table = TableName.parse(tableName) { out[store, default: []].append((table, column)) }
        }
        return out
    }

    /// The blob references in a type's stored definition (`RegistrySync.definition`), the
    /// root being `table`.
    static func definitionReferences(
        table: String, definition: String
    ) -> [(store: String, table: TableName, column: String)] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(definition.utf8)) as? [String: Any] else {
            return []
        }
        var out: [(store: String, table: TableName, column: String)] = []
        func walk(_ table: String, _ node: [String: Any]) {
            if let name = TableName.parse(table) {
                for blob in node["blobs"] as? [[String: Any]] ?? [] {
                    if let column = blob["column"] as? String, let store = blob["store"] as? String {
                        out.append((store, name, column))
                    }
                }
            }
            for child in node["children"] as? [[String: Any]] ?? [] {
                if let childTable = child["table"] as? String { walk(childTable, child) }
            }
        }
        walk(table, object)
        return out
    }

    static func compile(
        _ store: BlobStore, registry: Registry, retired: [(table: TableName, column: String)] = [],
        on connection: Connection
    ) throws -> CompiledBlobStore {
        let path = "blob_stores.\(store.name)"
        let table = try table(store.table, path: "\(path).table", on: connection)
        let key = try table.column(store.key, path: "\(path).key")
        let account = try table.column(store.account, path: "\(path).account")
        guard table.isUnique([key.name]) || table.isUnique([key.name, account.name]) else {
            throw RegistryError(
                path: "\(path).key",
                message: "key (\(key.name)) of \(store.table) is not provably unique: expected a primary key or unique "
                    + "index (valid, not partial) on exactly (\(key.name)) or (\(account.name), \(key.name)); "
                    + table.uniqueDescription)
        }
        var content: String?
        var rowJSON = "row_to_json(b)::text"
        if let name = store.content {
            let column = try table.column(name, path: "\(path).content")
            guard column.type == "bytea" else {
                throw RegistryError(
                    path: "\(path).content",
                    message: "column \(store.table).\(column.name) is \(column.type); expected bytea")
            }
            content = SQLIdentifier.quote(column.name)
            // The row with its content set to null, every other column as it is (columns added
            // later included); to_jsonb(b) - content would first hex-encode every blob's bytes.
            let nulled = try connection.literal(
                String(decoding: try JSONEncoder().encode([column.name: String?.none]), as: UTF8.self))
            rowJSON = "row_to_json(jsonb_populate_record(b, \(nulled)::jsonb))::text"
        }
        var references = registry.references(to: store.name)
        guard !references.isEmpty else {
            throw RegistryError(
                path: path,
                message: "no column references this blob store, so every blob would be an orphan; declare blobs: "
                    + "[{ column: …, store: \(store.name) }] where rows hold its keys, or remove the store")
        }
        for reference in retired
        where !references.contains(where: { $0.table == reference.table && $0.column == reference.column }) {
            // A retired type's table may be gone or changed: only columns still there count
            // (an unqualified name of an older registry is looked up as it always was).
            let present = try connection.query(
                """
                SELECT EXISTS (SELECT 1 FROM pg_attribute a
                               WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0
                                 AND NOT a.attisdropped)
                """, [quoted(reference.table), reference.column])[0].decode(Bool.self, at: 0)
            if present { references.append((reference.table, reference.column, nil)) }
        }
        let keySQL = SQLIdentifier.quote(key.name)
        // Where blob keys restart per account (unique only with the account column), a
        // reference names the blob of its own row's account: it counts only for that account.
        // Otherwise (keys unique across accounts, blobs may be shared) any reference counts.
        let perAccount = !table.isUnique([key.name])
        let unreferenced = references.map { reference in
            var sameAccount = ""
            if perAccount, let column = reference.account {
                sameAccount = " AND ref.\(SQLIdentifier.quote(column)) = b.\(SQLIdentifier.quote(account.name))"
            }
            return "NOT EXISTS (SELECT 1 FROM \(quoted(reference.table)) AS ref "
                + "WHERE ref.\(SQLIdentifier.quote(reference.column)) = b.\(keySQL)\(sameAccount))"
        }.joined(separator: " AND ")
        return CompiledBlobStore(
            store: store, sql: table.sql, key: keySQL, keyType: key.type, account: SQLIdentifier.quote(account.name),
            accountType: account.type, unreferenced: unreferenced, content: content, rowJSON: rowJSON)
    }

    static func compile(_ type: EntityType, on connection: Connection) throws -> CompiledEntityType {
        let path = "entity_types.\(type.name)"
        let root = try table(type.table, path: "\(path).table", on: connection)
        let account = try root.column(type.account, path: "\(path).account")
        let clock = try root.column(type.clock, path: "\(path).clock")
        let clockKind: ClockKind
        switch clock.baseType {
        case "timestamp with time zone": clockKind = .timestamptz
        case "timestamp without time zone": clockKind = .timestamp
        case "date": clockKind = .date
        default:
            throw RegistryError(
                path: "\(path).clock",
                message: "column \(type.table).\(clock.name) is \(clock.type); expected timestamp with time zone, "
                    + "timestamp or date (any precision)")
        }
        if let versions = type.versions {
            _ = try root.column(versions.item, path: "\(path).versions.item")
        }
        let rootKey = try key(type.key, of: root, account: account, path: "\(path).key")
        var tables = [
            CompiledTable(
                label: root.label, sql: root.sql, key: rootKey, parentIndex: nil, parent: [], account: account.compiled,
                blobs: try blobs(type.blobs, in: root, path: path))
        ]
        func add(_ children: [ChildTable], parent: Int, path: String) throws {
            for (index, child) in children.enumerated() {
                let childPath = "\(path).children[\(index)]"
                let table = try Self.table(child.table, path: "\(childPath).table", on: connection)
                let childAccount = try child.account.map { try table.column($0, path: "\(childPath).account") }
                let above = tables[parent]
                let parentColumns = try parentReference(
                    child.parent, of: table, account: childAccount, to: above, path: "\(childPath).parent")
                try checkOrder(child.parent, of: table, to: above, path: "\(childPath).parent", on: connection)
                let childKey: CompiledKey
                if let names = child.key {
                    childKey = try key(names, of: table, account: childAccount, path: "\(childPath).key")
                } else if table.columns.contains(where: { $0.name == "id" }),
                    let implicit = try? key(["id"], of: table, account: childAccount, path: "\(childPath).key")
                {
                    childKey = implicit
                } else if child.children.isEmpty {
                    // A leaf without a key of its own (a join table): named by its parent and its content.
                    childKey = CompiledKey(parts: parentColumns.map { .column($0) } + [.contentHash])
                } else {
                    throw RegistryError(
                        path: "\(childPath).key",
                        message: "\(child.table) has children of its own, so it needs a key they can refer to: "
                            + "key: [columns] that are unique (\(table.uniqueDescription))")
                }
                let blobs = try Self.blobs(child.blobs, in: table, path: childPath)
                tables.append(
                    CompiledTable(
                        label: table.label, sql: table.sql, key: childKey, parentIndex: parent, parent: parentColumns,
                        account: childAccount?.compiled, blobs: blobs))
                try add(child.children, parent: tables.count - 1, path: childPath)
            }
        }
        try add(type.children, parent: 0, path: path)
        let (function, inline) = predicateSQL(type, table: root.sql)
        let compiled = CompiledEntityType(
            type: type, tables: tables, clock: SQLIdentifier.quote(clock.name), clockKind: clockKind,
            predicateFunction: function,
            inlinePredicate: inline)
        // The predicate (and the whole filter) must plan: a typo or a non-boolean is caught here.
        do {
            try connection.execute(
                "EXPLAIN SELECT 1 FROM \(root.sql) AS r WHERE \(compiled.filter(account: "$1::text", cutoff: "now()", inline: true))",
                [String?.none])
        } catch let error as PostgresError where !error.isConnectionLost {
            throw RegistryError(
                path: type.predicate == nil ? path : "\(path).where",
                message: "the database refused the eligibility filter: \(error.message)"
                    + (type.predicate.map { " (predicate: \($0))" } ?? ""))
        }
        return compiled
    }

    /// The key of `table` as configured (`names`), proven unique: a primary key or unique
    /// index on exactly those columns, or on them and the account column — then the account
    /// column becomes the key's first part, so the key names one row across all tenants.
    static func key(
        _ names: [String], of table: Table, account: Column?, path: String
    ) throws(RegistryError) -> CompiledKey {
        var columns: [Column] = []
        for name in names {
            let column = try table.column(name, path: path)
            guard !["real", "double precision"].contains(column.baseType) else {
                throw RegistryError(
                    path: path,
                    message: "key column \(table.label).\(name) is \(column.type): a floating-point key cannot be "
                        + "matched exactly; expected an integer, numeric, text, uuid or other exact type")
            }
            columns.append(column)
        }
        if let proof = table.proof(names) {
            return CompiledKey(parts: columns.map { .column($0.compiled) }, proof: proof)
        }
        if let account, !names.contains(account.name), let proof = table.proof(names + [account.name]) {
            return CompiledKey(parts: ([account] + columns).map { .column($0.compiled) }, proof: proof)
        }
        let withAccount = account.map { " or (\(([$0.name] + names).joined(separator: ", ")))" } ?? ""
        throw RegistryError(
            path: path,
            message:
                "key (\(names.joined(separator: ", "))) of \(table.label) is not provably unique: expected a primary "
                + "key or unique index (valid, not partial) on exactly (\(names.joined(separator: ", ")))\(withAccount); "
                + table.uniqueDescription
                + (account == nil ? "" : "; a key unique only per account needs the table's account column configured"))
    }

    /// The child's columns that hold its parent's key: as many as the parent's key has
    /// columns, each of the same type, in the same order.
    static func parentReference(
        _ names: [String], of table: Table, account: Column?, to parent: CompiledTable, path: String
    ) throws(RegistryError) -> [CompiledColumn] {
        let expected = parent.key.columns
        let expectedText = expected.map { "\($0.name) \($0.type)" }.joined(separator: ", ")
        guard names.count == expected.count else {
            throw RegistryError(
                path: path,
                message:
                    "lists \(names.count) column\(names.count == 1 ? "" : "s") (\(names.joined(separator: ", "))), "
                    + "but the key of \(parent.label) has \(expected.count): (\(expectedText)); list the columns of "
                    + "\(table.label) that hold it, in that order"
                    + (expected.count > 1
                        ? ", e.g. parent: ["
                            + expected.map { wanted in
                                table.columns.contains(where: { $0.name == wanted.name }) ? wanted.name : "…"
                            }.joined(separator: ", ") + "]"
                        : ""))
        }
        var out: [CompiledColumn] = []
        for (name, wanted) in zip(names, expected) {
            let column = try table.column(name, path: path)
            let wantedBase = wanted.type.replacingOccurrences(
                of: #"\(\d+(,\d+)?\)"#, with: "", options: .regularExpression)
            guard column.baseType == wantedBase || column.type == wanted.type else {
                throw RegistryError(
                    path: path,
                    message: "column \(table.label).\(name) is \(column.type), but the key column it holds, "
                        + "\(parent.label).\(wanted.name), is \(wanted.type); expected the same type "
                        + "(key of \(parent.label): \(expectedText))")
            }
            out.append(column.compiled)
        }
        // The parent's account column must be held by the child's account column: by the one
        // configured, or else by the child's column of the same name, when it has one.
        if let parentAccount = parent.account,
            let position = expected.firstIndex(where: { $0.name == parentAccount.name })
        {
            let holder = account?.name ?? table.columns.first(where: { $0.name == parentAccount.name })?.name
            if let holder, names[position] != holder {
                var fixed = names
                if let other = fixed.firstIndex(of: holder) {
                    fixed.swapAt(position, other)
                } else {
                    fixed[position] = holder
                }
                throw RegistryError(
                    path: path,
                    message: "lists \(names[position]) where the key of \(parent.label) has its account column "
                        + "\(parentAccount.name) (key: \(expectedText)); the child's account column \(holder) must hold it: "
                        + "expected parent: [\(fixed.joined(separator: ", "))]")
            }
        }
        return out
    }

    /// Where a foreign key of the child covers exactly the parent columns and references
    /// exactly the parent's key columns, `names` must pair them as it does.
    static func checkOrder(
        _ names: [String], of table: Table, to parent: CompiledTable, path: String, on connection: Connection
    ) throws {
        let keyNames = parent.key.columns.map(\.name)
        let foreignKeys = try connection.query(
            """
            SELECT array_agg(ca.attname::text ORDER BY k.position), array_agg(pa.attname::text ORDER BY k.position)
            FROM pg_constraint c
            CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(child, parent, position)
            JOIN pg_attribute ca ON ca.attrelid = c.conrelid AND ca.attnum = k.child
            JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = k.parent
            WHERE c.contype = 'f' AND c.conrelid = to_regclass($1) AND c.confrelid = to_regclass($2)
            GROUP BY c.oid
            """, [table.sql, parent.sql])
        for row in foreignKeys {
            let (childColumns, parentColumns) = try row.decode(([String], [String]).self)
            guard Set(childColumns) == Set(names), Set(parentColumns) == Set(keyNames) else { continue }
            let pairing = Dictionary(uniqueKeysWithValues: zip(parentColumns, childColumns))
            let expected = keyNames.map { pairing[$0]! }
            if expected != names {
                throw RegistryError(
                    path: path,
                    message: "lists [\(names.joined(separator: ", "))], but the foreign key of \(table.label) pairs "
                        + "them with the key of \(parent.label) (\(keyNames.joined(separator: ", "))) in another order: "
                        + "expected parent: [\(expected.joined(separator: ", "))]")
            }
        }
    }

    /// The SQL function that evaluates `type`'s predicate over a root row, and the same as
    /// an inline scalar subquery; nil without a predicate. The function's name carries a hash
    /// of the table and predicate, so a changed predicate is a new function.
    static func predicateSQL(_ type: EntityType, table: String) -> (function: String?, inline: String?) {
        guard let predicate = type.predicate else { return (nil, nil) }
        let digest = SHA256.hash(data: Data((table + "\u{0}" + predicate).utf8))
        let hex = digest.prefix(8).map { String(format: "%02x", $0) }.joined()
        let name = "eligible_\(type.name.prefix(30))_\(hex)"
        return ("lethe.\(SQLIdentifier.quote(name))", predicateBody(predicate, row: "r"))
    }

    /// The predicate as a scalar subquery over one row (`row`): its columns resolve
    /// unqualified and as `r.column`.
    static func predicateBody(_ predicate: String, row: String) -> String {
        "(SELECT (\(predicate)) FROM (SELECT (\(row)).*) AS r)"
    }

    static func blobs(
        _ references: [BlobReference], in table: Table, path: String
    ) throws(RegistryError)
        -> [(column: String, store: String)]
    {
        var out: [(String, String)] = []
        for (index, reference) in references.enumerated() {
            let column = try table.column(reference.column, path: "\(path).blobs[\(index)].column")
            out.append((SQLIdentifier.quote(column.name), reference.store))
        }
        return out
    }
}
