import ArchiveFormat
import Foundation
import Postgres
import Retention

/// Re-inserts an archive's blobs and rows, in the caller's transaction and in the archive's
/// order (blob contents, blob rows, then each type's tables root first), with
/// `INSERT … OVERRIDING SYSTEM VALUE SELECT … FROM json_populate_recordset(NULL::t, $1)`.
/// It never writes over a row: once any archived key exists, it only counts (the caller
/// rolls back). Blob rows that exist exactly as archived (a blob still shared) are left.
/// Keep-only types are skipped: retention never deleted their rows. Blob contents wait in a
/// temporary table (`ON COMMIT DROP`) until their rows arrive.
public final class ArchiveRestore: ArchiveRestoreTarget {
    /// What the restore did, or would have done, to one table.
    public struct TableResult: Sendable {
        /// `app.conversations` as configured.
        public var table: String
        /// `conversations` (an entity type) or `blob store blobs`.
        public var source: String
        public var restored = 0
        /// Blob rows already present exactly as archived.
        public var identical = 0
        /// Rows of a keep-only type, not restored.
        public var skipped = 0
        /// Rows whose key exists already, and the first few of those keys.
        public var existing = 0
        public var existingKeys: [String] = []
    }

    let registry: CompiledRegistry
    let connection: Connection
    private var order: [String] = []
    private var byTable: [String: TableResult] = [:]
    private var columns: [String: [String]] = [:]
    private var blob: (store: String, key: String, seq: Int)?

    /// Starts a restore inside the open transaction on `connection`.
    /// The account the archive is of: every record must belong to it.
    public let account: String

    /// Starts a restore of `account`'s archive inside the open transaction on `connection`.
    public init(registry: CompiledRegistry, account: String, on connection: Connection) throws {
        precondition(connection.isInTransaction, "ArchiveRestore outside a transaction")
        self.registry = registry
        self.account = account
        self.connection = connection
        try connection.execute("SET CONSTRAINTS ALL DEFERRED")
        try connection.execute(
            """
            CREATE TEMPORARY TABLE lethe_restore_slices (
                store text NOT NULL, blob_key text NOT NULL, seq integer NOT NULL, bytes bytea NOT NULL,
                PRIMARY KEY (store, blob_key, seq)
            ) ON COMMIT DROP
            """)
    }

    /// Every table touched, in the order the archive reached it.
    public var results: [TableResult] { order.compactMap { byTable[$0] } }

    /// True once an archived key was found in the database: nothing more is inserted.
    public var hasConflicts: Bool { byTable.values.contains { $0.existing > 0 } }

    /// The refusal to commit when keys exist: per table, how many and the first keys.
    public var conflict: ArchiveRestoreError? {
        let tables = results.filter { $0.existing > 0 }
        guard !tables.isEmpty else { return nil }
        let lines = tables.map { result in
            let more = result.existing > result.existingKeys.count ? ", …" : ""
            return "  \(result.table) (\(result.source)): \(result.existing) archived row"
                + (result.existing == 1 ? " exists" : "s exist") + " already (key "
                + result.existingKeys.joined(separator: ", ") + more + ")"
        }
        return ArchiveRestoreError(
            .conflict,
            "restore refused: it never writes over rows, and rows with the archive's keys exist; "
                + "rolled back, nothing changed:\n" + lines.joined(separator: "\n"))
    }

    /// Checks that the registry can take `entry` before any of its data arrives.
    public func check(_ entry: ArchiveEntryName) throws {
        switch entry {
        case .manifest: return
        case .other:
            throw ArchiveRestoreError(.configuration, "the archive holds an entry Lethe does not write")
        case .blob(let store, _):
            let compiled = try blobStore(store)
            guard compiled.content != nil else {
                throw ArchiveRestoreError(
                    .configuration,
                    "the archive holds blob contents of store \(store), but blob_stores.\(store) has no content column")
            }
        case .blobRows(let store): _ = try blobStore(store)
        case .rows(let type, let index, let table): _ = try self.table(type: type, index: index, label: table)
        }
    }

    /// Starts the content of one blob (an empty entry is empty content).
    public func beginBlob(store: String, key: String) throws {
        blob = (store, key, 0)
        try connection.execute(
            "INSERT INTO pg_temp.lethe_restore_slices VALUES ($1, $2, 0, ''::bytea)", [store, key])
    }

    /// Appends a slice to the current blob's content.
    public func blobData(_ bytes: Data) throws {
        guard let current = blob else { preconditionFailure("blob data outside a blob") }
        blob = (current.store, current.key, current.seq + 1)
        try connection.execute(
            "INSERT INTO pg_temp.lethe_restore_slices VALUES ($1, $2, $3, $4)",
            [current.store, current.key, current.seq + 1, bytes])
    }

    /// Inserts `records` (JSON objects, at most `RestoreSink.batchSize`) of a rows entry, or once keys
    /// exist only counts those that do.
    public func insert(_ records: [String], into entry: ArchiveEntryName) throws {
        guard !records.isEmpty else { return }
        let json = "[" + records.joined(separator: ",") + "]"
        switch entry {
        case .blobRows(let store): try insertBlobRows(json, count: records.count, store: try blobStore(store))
        case .rows(let type, let index, let label):
            let (compiled, table) = try self.table(type: type, index: index, label: label)
            let id = table.label
            note(id, source: compiled.name)
            guard compiled.type.deletes else {
                byTable[id]!.skipped += records.count
                return
            }
            try checkBelongs(
                json, table: table.label,
                condition: compiled.belongs(index, alias: "r", account: "$2::text"), sql: table.sql)
            let (existing, keys) = try existingKeys(json, table: table.sql, key: table.key)
            record(existing: existing, keys: keys, in: id)
            guard !hasConflicts else { return }
            let columns = try columns(of: table.sql)
            byTable[id]!.restored += try connection.execute(
                """
                INSERT INTO \(table.sql) (\(columns.joined(separator: ", "))) OVERRIDING SYSTEM VALUE
                SELECT \(columns.map { "r.\($0)" }.joined(separator: ", "))
                FROM json_populate_recordset(NULL::\(table.sql), $1::json) AS r
                """, [json])
        default: preconditionFailure("records of \(entry) are not rows")
        }
    }

    /// Refuses a batch with any record that does not belong to the archive's account (a
    /// crafted archive must not write another tenant's rows).
    private func checkBelongs(_ json: String, table label: String, condition: String, sql: String) throws {
        let foreign = try connection.query(
            """
            SELECT count(*)::bigint FROM json_populate_recordset(NULL::\(sql), $1::json) AS r
            WHERE NOT coalesce((\(condition)), false)
            """, [json, account])[0].decode(Int.self, at: 0)
        guard foreign == 0 else {
            throw ArchiveRestoreError(
                .configuration,
                "\(foreign) record\(foreign == 1 ? "" : "s") of \(label) do not belong to account \(account), the "
                    + "archive's account (another account's rows, or children of no restored or existing parent of it)")
        }
    }

    private func insertBlobRows(_ json: String, count: Int, store: CompiledBlobStore) throws {
        let id = store.store.table.description
        try checkBelongs(
            json, table: id, condition: store.ofAccount("$2::text", alias: "r"), sql: store.sql)
        note(id, source: "blob store \(store.store.name)")
        let name = store.store.name
        let content = try store.store.content.map { try connection.literal($0) }
        let slices = """
            LEFT JOIN LATERAL (SELECT string_agg(s.bytes, ''::bytea ORDER BY s.seq) AS content
                               FROM pg_temp.lethe_restore_slices s WHERE s.store = $2 AND s.blob_key = r.\(store.key)::text) x
              ON true
            """
        let same =
            content.map { column in
                "(to_jsonb(b) - \(column)) = (to_jsonb(r) - \(column)) AND b.\(store.content!) IS NOT DISTINCT FROM x.content"
            } ?? "to_jsonb(b) = to_jsonb(r)"
        let row = try connection.query(
            """
            WITH e AS MATERIALIZED (
                SELECT r.\(store.key)::text AS k, \(same) AS same
                FROM json_populate_recordset(NULL::\(store.sql), $1::json) AS r
                JOIN \(store.sql) AS b ON b.\(store.key) = r.\(store.key) AND b.\(store.account) = r.\(store.account)
                \(slices)
            )
            SELECT (SELECT count(*) FROM e WHERE same)::bigint, (SELECT count(*) FROM e WHERE NOT same)::bigint,
                   (SELECT string_agg(k, ', ') FROM (SELECT k FROM e WHERE NOT same LIMIT 5) f)
            """, [json, name])[0]
        let (identical, existing, keys) = try row.decode((Int, Int, String?).self)
        byTable[id]!.identical += identical
        record(existing: existing, keys: keys, in: id)
        guard !hasConflicts else { return }
        let columns = try columns(of: store.sql)
        let values = columns.map { $0 == store.content ? "x.content" : "r.\($0)" }
        byTable[id]!.restored += try connection.execute(
            """
            INSERT INTO \(store.sql) (\(columns.joined(separator: ", "))) OVERRIDING SYSTEM VALUE
            SELECT \(values.joined(separator: ", "))
            FROM json_populate_recordset(NULL::\(store.sql), $1::json) AS r
            \(slices)
            WHERE NOT EXISTS (SELECT 1 FROM \(store.sql) AS b
                              WHERE b.\(store.key) = r.\(store.key) AND b.\(store.account) = r.\(store.account))
            """, [json, name])
        try connection.execute(
            """
            DELETE FROM pg_temp.lethe_restore_slices s USING json_populate_recordset(NULL::\(store.sql), $1::json) AS r
            WHERE s.store = $2 AND s.blob_key = r.\(store.key)::text
            """, [json, name])
    }

    /// How many of the batch's keys exist in `table`, and the first five.
    private func existingKeys(_ json: String, table: String, key: CompiledKey) throws -> (Int, String?) {
        let row = try connection.query(
            """
            WITH e AS MATERIALIZED (
                SELECT \(key.text("r")) AS k FROM json_populate_recordset(NULL::\(table), $1::json) AS r
                WHERE EXISTS (SELECT 1 FROM \(table) AS t WHERE \(key.same("t", "r")))
            )
            SELECT (SELECT count(*) FROM e)::bigint, (SELECT string_agg(k, ', ') FROM (SELECT k FROM e LIMIT 5) f)
            """, [json])[0]
        return try row.decode((Int, String?).self)
    }

    private func record(existing: Int, keys: String?, in id: String) {
        guard existing > 0 else { return }
        byTable[id]!.existing += existing
        let room = 5 - byTable[id]!.existingKeys.count
        if room > 0, let keys {
            byTable[id]!.existingKeys += keys.components(separatedBy: ", ").prefix(room)
        }
    }

    private func note(_ id: String, source: String) {
        guard byTable[id] == nil else { return }
        order.append(id)
        byTable[id] = TableResult(table: id, source: source)
    }

    /// The table's insertable columns (not generated), quoted, in their order.
    private func columns(of table: String) throws -> [String] {
        if let known = columns[table] { return known }
        let names = try connection.query(
            """
            SELECT a.attname FROM pg_attribute a
            WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
            ORDER BY a.attnum
            """, [table]
        ).map { SQLIdentifier.quote(try $0.decode(String.self, at: 0)) }
        columns[table] = names
        return names
    }

    private func blobStore(_ name: String) throws -> CompiledBlobStore {
        guard let store = registry.blobStores[name] else {
            throw ArchiveRestoreError(
                .configuration,
                "the archive holds blobs of store \(name), which the configuration does not declare (blob_stores.\(name))"
            )
        }
        return store
    }

    private func table(type: String, index: Int, label: String) throws -> (CompiledEntityType, CompiledTable) {
        guard let compiled = registry.entityTypes[type] else {
            throw ArchiveRestoreError(
                .configuration,
                "the archive holds records of entity type \(type), which the configuration does not declare "
                    + "(entity_types.\(type))")
        }
        guard compiled.tables.indices.contains(index), compiled.tables[index].label == label else {
            let tables = compiled.tables.enumerated().map { "\($0.offset)-\($0.element.label)" }
            throw ArchiveRestoreError(
                .configuration,
                "the archive's table \(index)-\(label) of entity type \(type) is not in the configuration, whose "
                    + "tables are \(tables.joined(separator: ", ")); restore with the configuration the archive was made with"
            )
        }
        return (compiled, compiled.tables[index])
    }
}
