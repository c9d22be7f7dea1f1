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
        var type: String
    }

    struct Table {
        var label: String
        var sql: String
        var columns: [Column]

        func column(_ name: String, path: String) throws(RegistryError) -> Column {
            guard let column = columns.first(where: { $0.name == name }) else {
                throw RegistryError(
                    path: path,
                    message: "table \(label) has no column \"\(name)\"; its columns: "
                        + columns.map(\.name).joined(separator: ", "))
            }
            return column
        }
    }

    public static func compile(_ registry: Registry, on connection: Connection) throws -> CompiledRegistry {
        var stores: [String: CompiledBlobStore] = [:]
        for store in registry.blobStores {
            stores[store.name] = try compile(store, registry: registry, on: connection)
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
        let sql = quoted(name)
        let rows = try connection.query(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod)
            FROM pg_attribute a
            WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """, [sql])
        guard rows.count > 0 else {
            throw RegistryError(
                path: path,
                message: "table \(name) does not exist (or has no columns)"
                    + (name.schema == nil ? " on the search_path" : "") + "; names are matched exactly, case-sensitive")
        }
        return Table(
            label: name.description, sql: sql,
            columns: try rows.map { Column(name: try $0.decode(at: 0), type: try $0.decode(at: 1)) })
    }

    static func compile(_ store: BlobStore, registry: Registry, on connection: Connection) throws -> CompiledBlobStore {
        let path = "blob_stores.\(store.name)"
        let table = try table(store.table, path: "\(path).table", on: connection)
        let key = try table.column(store.key, path: "\(path).key")
        let account = try table.column(store.account, path: "\(path).account")
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
        let references = registry.references(to: store.name)
        guard !references.isEmpty else {
            throw RegistryError(
                path: path,
                message: "no column references this blob store, so every blob would be an orphan; declare blobs: "
                    + "[{ column: …, store: \(store.name) }] where rows hold its keys, or remove the store")
        }
        let keySQL = SQLIdentifier.quote(key.name)
        let unreferenced = references.map { reference in
            "NOT EXISTS (SELECT 1 FROM \(quoted(reference.table)) AS ref "
                + "WHERE ref.\(SQLIdentifier.quote(reference.column)) = b.\(keySQL))"
        }.joined(separator: " AND ")
        return CompiledBlobStore(
            store: store, sql: table.sql, key: keySQL, keyType: key.type, account: SQLIdentifier.quote(account.name),
            accountType: account.type, unreferenced: unreferenced, content: content, rowJSON: rowJSON)
    }

    static func compile(_ type: EntityType, on connection: Connection) throws -> CompiledEntityType {
        let path = "entity_types.\(type.name)"
        let root = try table(type.table, path: "\(path).table", on: connection)
        let key = try root.column(type.key, path: "\(path).key")
        let account = try root.column(type.account, path: "\(path).account")
        let clock = try root.column(type.clock, path: "\(path).clock")
        let clockKind: ClockKind
        switch clock.type {
        case "timestamp with time zone": clockKind = .timestamptz
        case "timestamp without time zone": clockKind = .timestamp
        case "date": clockKind = .date
        default:
            throw RegistryError(
                path: "\(path).clock",
                message: "column \(type.table).\(clock.name) is \(clock.type); expected timestamp with time zone, "
                    + "timestamp or date")
        }
        if let versions = type.versions {
            _ = try root.column(versions.item, path: "\(path).versions.item")
        }
        var tables = [
            CompiledTable(
                label: root.label, sql: root.sql, key: SQLIdentifier.quote(key.name), keyType: key.type,
                parentIndex: nil, parent: nil, parentType: nil,
                blobs: try blobs(type.blobs, in: root, path: path))
        ]
        func add(_ children: [ChildTable], parent: Int, path: String) throws {
            for (index, child) in children.enumerated() {
                let childPath = "\(path).children[\(index)]"
                let table = try Self.table(child.table, path: "\(childPath).table", on: connection)
                let childKey = try table.column(child.key, path: "\(childPath).key")
                let parentColumn = try table.column(child.parent, path: "\(childPath).parent")
                let blobs = try Self.blobs(child.blobs, in: table, path: childPath)
                tables.append(
                    CompiledTable(
                        label: table.label, sql: table.sql, key: SQLIdentifier.quote(childKey.name),
                        keyType: childKey.type, parentIndex: parent, parent: SQLIdentifier.quote(parentColumn.name),
                        parentType: parentColumn.type, blobs: blobs))
                try add(child.children, parent: tables.count - 1, path: childPath)
            }
        }
        try add(type.children, parent: 0, path: path)
        let compiled = CompiledEntityType(
            type: type, tables: tables, account: SQLIdentifier.quote(account.name), accountType: account.type,
            clock: SQLIdentifier.quote(clock.name), clockKind: clockKind)
        // The predicate (and the whole filter) must plan: a typo or a non-boolean is caught here.
        do {
            try connection.execute(
                "EXPLAIN SELECT 1 FROM \(root.sql) AS r WHERE \(compiled.filter(account: "$1::text", cutoff: "now()"))",
                [String?.none])
        } catch let error as PostgresError where !error.isConnectionLost {
            throw RegistryError(
                path: type.predicate == nil ? path : "\(path).where",
                message: "the database refused the eligibility filter: \(error.message)"
                    + (type.predicate.map { " (predicate: \($0))" } ?? ""))
        }
        return compiled
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
