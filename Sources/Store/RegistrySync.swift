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
                upcoming_sql = EXCLUDED.upcoming_sql, lanes = EXCLUDED.lanes, active = true, synced_at = now()
            """,
            [
                type.name, type.table.description, type.key, type.account, entity.accountType, type.clock,
                type.predicate, type.bounds.defaultInterval.postgresText, type.bounds.minimum.postgresText,
                type.bounds.maximum.postgresText, type.batchSize,
                (type.checkInterval ?? defaultCheckInterval).milliseconds, type.deletes, type.versions?.item,
                type.versions?.keep, try json(definition(type)), entity.backlogSQL, entity.upcomingSQL, type.lanes,
            ])
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
                    "table": $0.table.description, "key": $0.key, "parent": $0.parent, "blobs": blobs($0.blobs),
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
