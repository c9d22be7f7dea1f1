import Foundation
import Postgres
import Retention

/// Writes a compiled registry into `lethe.entity_types` and `lethe.blob_stores`, so SQL
/// (views, tiers, policies) can join on it. Types and stores no longer configured stay,
/// marked inactive, so history and policies still join; they get no runs.
public enum RegistrySync {
    /// Serialises concurrent syncs from several processes starting at once ("lethereg").
    static let lockKey: Int64 = 0x6c65_7468_6572_6567

    public static func sync(
        _ compiled: CompiledRegistry, defaultCheckInterval: Duration, on connection: Connection
    ) throws {
        try locked(on: connection) { try write(compiled, defaultCheckInterval: defaultCheckInterval, on: $0) }
    }

    /// Runs `body` in a transaction holding the registry lock: what it reads of the registry
    /// in force stays in force until it commits.
    public static func locked<T>(on connection: Connection, _ body: (Connection) throws -> T) throws -> T {
        try connection.withTransaction { connection in
            try connection.execute("SELECT pg_advisory_xact_lock($1)", [lockKey])
            return try body(connection)
        }
    }

    /// Writes `compiled` into `lethe.entity_types` and `lethe.blob_stores`; the caller holds
    /// the transaction and the lock (`locked`).
    public static func write(
        _ compiled: CompiledRegistry, defaultCheckInterval: Duration, on connection: Connection
    ) throws {
        try retireRemovedReferences(compiled.registry, on: connection)
        for type in compiled.registry.entityTypes {
            guard let entity = compiled.entityTypes[type.name] else { continue }
            try upsert(entity, defaultCheckInterval: defaultCheckInterval, on: connection)
        }
        try connection.execute(
            "UPDATE lethe.entity_types SET active = false, synced_at = now() WHERE active AND NOT name = ANY($1)",
            [compiled.registry.entityTypes.map(\.name)])
        for store in compiled.registry.blobStores {
            guard let blobs = compiled.blobStores[store.name] else { continue }
            try upsert(blobs, registry: compiled.registry, on: connection)
        }
        try connection.execute(
            "UPDATE lethe.blob_stores SET active = false, synced_at = now() WHERE active AND NOT name = ANY($1)",
            [compiled.registry.blobStores.map(\.name)])
    }

    static func upsert(_ entity: CompiledEntityType, defaultCheckInterval: Duration, on connection: Connection) throws {
        let type = entity.type
        try createPredicateFunction(entity, on: connection)
        try connection.execute(
            """
            INSERT INTO lethe.entity_types AS e (
                name, table_name, key_column, account_column, account_type, clock_column, predicate,
                default_interval, min_interval, max_interval, batch_size, check_interval, deletes,
                versions_item, versions_keep, definition, backlog_sql, upcoming_sql, lanes, active, synced_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8::interval, $9::interval, $10::interval, $11,
                    $12 * interval '1 millisecond', $13, $14, $15, $16::jsonb, $17, $18, $19, true, now())
            ON CONFLICT (name) DO UPDATE SET
                table_name = EXCLUDED.table_name, key_column = EXCLUDED.key_column,
                account_column = EXCLUDED.account_column, account_type = EXCLUDED.account_type,
                clock_column = EXCLUDED.clock_column, predicate = EXCLUDED.predicate,
                default_interval = EXCLUDED.default_interval, min_interval = EXCLUDED.min_interval,
                max_interval = EXCLUDED.max_interval, batch_size = EXCLUDED.batch_size,
                check_interval = EXCLUDED.check_interval, deletes = EXCLUDED.deletes,
                versions_item = EXCLUDED.versions_item, versions_keep = EXCLUDED.versions_keep,
                definition = EXCLUDED.definition, backlog_sql = EXCLUDED.backlog_sql,
                upcoming_sql = EXCLUDED.upcoming_sql, lanes = EXCLUDED.lanes, active = true, synced_at = now(),
                forgotten_at = NULL, forgotten_by = NULL
            """,
            [
                type.name, type.table.description, type.key.joined(separator: ","), type.account, entity.accountType,
                type.clock,
                type.predicate, type.bounds.defaultInterval.postgresText, type.bounds.minimum.postgresText,
                type.bounds.maximum.postgresText, type.batchSize,
                (type.checkInterval ?? defaultCheckInterval).milliseconds, type.deletes, type.versions?.item,
                type.versions?.keep, try json(definition(type)), entity.backlogSQL, entity.upcomingSQL, type.lanes,
            ])
    }

    /// Records the blob columns a sync takes out of types that stay configured (a removed
    /// `blobs:` entry or child table): their rows may still hold blob keys, so they keep
    /// counting as references (`lethe.retired_references`) until the type is forgotten.
    static func retireRemovedReferences(_ registry: Registry, on connection: Connection) throws {
        for row in try connection.query(
            "SELECT name, table_name, definition::text FROM lethe.entity_types WHERE active")
        {
            let (name, table, definition) = try row.decode((String, String, String).self)
            guard let type = registry.entityType(named: name) else { continue }  // a removed type: retired whole
            let current = Registry(entityTypes: [type])
            for old in RegistryCatalog.definitionReferences(table: table, definition: definition)
            where !current.references(to: old.store).contains(where: {
                $0.table == old.table && $0.column == old.column
            }) {
                try connection.execute(
                    """
                    INSERT INTO lethe.retired_references (entity_type, store, table_name, column_name)
                    VALUES ($1, $2, $3, $4)
                    ON CONFLICT ON CONSTRAINT retired_references_pkey
                    DO UPDATE SET forgotten_at = NULL, retired_at = now()
                    WHERE retired_references.forgotten_at IS NOT NULL
                    """, [name, old.store, old.table.description, old.column])
            }
        }
    }

    /// Creates the function that evaluates the type's predicate over one root row. The
    /// predicate is parsed on its own, as the body of that function, so whatever its text it
    /// cannot change the statements that call it: it can only narrow the rows they take.
    /// A predicate that calls a volatile function (side effects) is refused.
    static func createPredicateFunction(_ entity: CompiledEntityType, on connection: Connection) throws {
        guard let function = entity.predicateFunction, let predicate = entity.type.predicate else { return }
        let path = "entity_types.\(entity.name).where"
        do {
            try connection.execute(
                """
                CREATE OR REPLACE FUNCTION \(function)(lethe_row \(entity.root.sql)) RETURNS boolean
                LANGUAGE sql STABLE PARALLEL SAFE
                RETURN \(RegistryCatalog.predicateBody(predicate, row: "lethe_row"))
                """)
        } catch let error as PostgresError where !error.isConnectionLost {
            throw RegistryError(
                path: path, message: "the database refused the predicate \"\(predicate)\": \(error.message)")
        }
        // What the predicate reaches, through pg_depend and the objects that carry code of
        // their own (operators' functions, views' rules, domains' checks), to a bounded depth.
        // Built-in functions are pinned and never recorded in pg_depend, so the deparsed code
        // of the function, views and checks reached is also read for call names (over-
        // approximating: a name with any volatile overload counts).
        let volatile = try connection.query(
            """
            WITH RECURSIVE reach(classid, objid, depth) AS (
                SELECT 'pg_proc'::regclass::oid, to_regproc($1)::oid, 0
                UNION
                SELECT n.classid, n.objid, r.depth + 1 FROM reach r
                CROSS JOIN LATERAL (
                    SELECT d.refclassid, d.refobjid FROM pg_depend d WHERE d.classid = r.classid AND d.objid = r.objid
                    UNION ALL
                    SELECT 'pg_rewrite'::regclass::oid, w.oid FROM pg_rewrite w
                    WHERE r.classid = 'pg_class'::regclass AND w.ev_class = r.objid
                    UNION ALL
                    SELECT 'pg_constraint'::regclass::oid, c.oid FROM pg_constraint c
                    WHERE r.classid = 'pg_type'::regclass AND c.contypid = r.objid
                    UNION ALL
                    SELECT 'pg_proc'::regclass::oid, o.oprcode::oid FROM pg_operator o
                    WHERE r.classid = 'pg_operator'::regclass AND o.oid = r.objid
                ) n(classid, objid)
                WHERE r.depth < 8
            ),
            code(text) AS (
                SELECT pg_get_function_sqlbody(r.objid) FROM reach r WHERE r.classid = 'pg_proc'::regclass
                UNION ALL
                SELECT pg_get_viewdef(r.objid) FROM reach r JOIN pg_class c ON c.oid = r.objid
                WHERE r.classid = 'pg_class'::regclass AND c.relkind IN ('v', 'm')
                UNION ALL
                SELECT pg_get_constraintdef(r.objid) FROM reach r WHERE r.classid = 'pg_constraint'::regclass
            ),
            called(oid) AS (
                SELECT r.objid FROM reach r WHERE r.classid = 'pg_proc'::regclass
                UNION
                SELECT p.oid FROM code,
                    regexp_matches(code.text, '([A-Za-z_][A-Za-z0-9_$]*)"?\\s*\\(', 'g') AS m(name)
                JOIN pg_proc p ON p.proname = m.name[1] OR p.proname = lower(m.name[1])
            )
            SELECT string_agg(DISTINCT p.proname::text, ', ')
            FROM called c JOIN pg_proc p ON p.oid = c.oid WHERE p.provolatile = 'v'
            """, [function])[0].decode(String?.self, at: 0)
        if let volatile {
            throw RegistryError(
                path: path,
                message: "the predicate \"\(predicate)\" calls \(volatile), which may have side effects "
                    + "(a volatile function); expected a predicate that only reads (immutable or stable functions)")
        }
    }

    static func upsert(_ blobs: CompiledBlobStore, registry: Registry, on connection: Connection) throws {
        let store = blobs.store
        let references = registry.references(to: store.name).map {
            ["table": $0.table.description, "column": $0.column]
        }
        try connection.execute(
            """
            INSERT INTO lethe.blob_stores AS s (
                name, table_name, key_column, account_column, account_type, grace, batch_size, cap_per_run,
                definition, active, synced_at)
            VALUES ($1, $2, $3, $4, $5, $6 * interval '1 millisecond', $7, $8, $9::jsonb, true, now())
            ON CONFLICT (name) DO UPDATE SET
                table_name = EXCLUDED.table_name, key_column = EXCLUDED.key_column,
                account_column = EXCLUDED.account_column, account_type = EXCLUDED.account_type,
                grace = EXCLUDED.grace, batch_size = EXCLUDED.batch_size, cap_per_run = EXCLUDED.cap_per_run,
                definition = EXCLUDED.definition, active = true, synced_at = now()
            """,
            [
                store.name, store.table.description, store.key, store.account, blobs.accountType,
                store.grace.milliseconds, store.batchSize, store.capPerRun, try json(["references": references]),
            ])
    }

    /// The tree below a type (children and blob columns), as the configuration wrote it.
    static func definition(_ type: EntityType) -> [String: Any] {
        func blobs(_ references: [BlobReference]) -> [[String: String]] {
            references.map { ["column": $0.column, "store": $0.store] }
        }
        func children(_ list: [ChildTable]) -> [[String: Any]] {
            list.map {
                [
                    "table": $0.table.description, "key": $0.key.map { $0 as Any } ?? NSNull(), "parent": $0.parent,
                    "account": $0.account.map { $0 as Any } ?? NSNull(), "blobs": blobs($0.blobs),
                    "children": children($0.children),
                ]
            }
        }
        return ["blobs": blobs(type.blobs), "children": children(type.children)]
    }

    static func json(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }
}
