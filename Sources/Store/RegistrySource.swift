import Foundation
import Postgres

/// The registry in force as the database keeps it (`lethe.registry_source`, newest row):
/// the configuration's `entity_types:` and `blob_stores:` sections as text, and who synced
/// them. Every command except the coordinator, `lethe run` and `lethe policy sync` reads the
/// registry from here, never from its own configuration file.
public struct RegistrySource: Sendable, Equatable {
    public var text: String
    public var sha256: String
    public var configPath: String?
    public var syncedBy: String
    public var syncedHost: String
    /// When it was synced, UTC, as text (`2026-12-07 03:04:05 UTC`).
    public var syncedAt: String?

    public init(
        text: String, sha256: String, configPath: String?, syncedBy: String,
        syncedHost: String = ProcessInfo.processInfo.hostName, syncedAt: String? = nil
    ) {
        self.text = text
        self.sha256 = sha256
        self.configPath = configPath
        self.syncedBy = syncedBy
        self.syncedHost = syncedHost
        self.syncedAt = syncedAt
    }

    /// Where it came from, for messages: `lethe policy sync on host at 2026-…, from /etc/lethe.yml`.
    public var origin: String {
        "\(syncedBy) on \(syncedHost)" + (syncedAt.map { " at \($0)" } ?? "")
            + (configPath.map { ", from \($0)" } ?? "")
    }

    /// The registry in force, or nil when nothing was synced yet.
    public static func current(on connection: Connection) throws -> RegistrySource? {
        try connection.query(
            """
            SELECT source, sha256, config_path, synced_by, synced_host,
                   to_char(synced_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"')
            FROM lethe.registry_source ORDER BY id DESC LIMIT 1
            """
        ).first.map { row in
            let (text, sha, path, by, host, at) = try row.decode((String, String, String?, String, String, String).self)
            return RegistrySource(
                text: text, sha256: sha, configPath: path, syncedBy: by, syncedHost: host, syncedAt: at)
        }
    }

    /// Whether any registry was synced yet (without reading its text).
    public static func exists(on connection: Connection) throws -> Bool {
        try connection.query("SELECT EXISTS (SELECT 1 FROM lethe.registry_source)")[0].decode(Bool.self, at: 0)
    }

    /// Records `self` as the registry in force, with the changes a sync reported; inside the
    /// sync's transaction (`RegistrySync.locked`). Unchanged text adds no row.
    public func record(changes: [String], confirmed: Bool, on connection: Connection) throws {
        try connection.execute(
            """
            INSERT INTO lethe.registry_source (source, sha256, config_path, synced_by, synced_host, changes, confirmed)
            SELECT $1, $2, $3, $4, $5, $6, $7
            WHERE NOT EXISTS (SELECT 1 FROM (SELECT sha256 FROM lethe.registry_source ORDER BY id DESC LIMIT 1) c
                              WHERE c.sha256 = $2)
            """, [text, sha256, configPath, syncedBy, syncedHost, changes, confirmed])
    }

    /// An active entity type of a database synced before the registry was kept as text (no
    /// `lethe.registry_source` row), as `lethe.entity_types` has it.
    public struct LegacyType: Sendable {
        public var name, table, key, account, clock: String
        public var predicate: String?
        public var minimum, maximum: String
        public var deletes: Bool
        public var versionsKeep: Int?
        /// The blob columns of its tree: "store table.column".
        public var references: [String]
    }

    /// The active entity types of a database synced before the registry was kept as text.
    public static func legacyTypes(on connection: Connection) throws -> [LegacyType] {
        try connection.query(
            """
            SELECT name, table_name, key_column, account_column, clock_column, predicate, min_interval::text,
                   max_interval::text, deletes, versions_keep, definition::text
            FROM lethe.entity_types WHERE active ORDER BY name
            """
        ).map { row in
            let (name, table, key, account, clock, predicate) = try row.decode(
                (String, String, String, String, String, String?).self)
            let minimum = try row.decode(String.self, at: 6)
            let maximum = try row.decode(String.self, at: 7)
            let deletes = try row.decode(Bool.self, at: 8)
            let keep = try row.decode(Int?.self, at: 9)
            let definition = try row.decode(String.self, at: 10)
            let references = RegistryCatalog.definitionReferences(table: table, definition: definition).map {
                "\($0.store) \($0.table).\($0.column)"
            }
            return LegacyType(
                name: name, table: table, key: key, account: account, clock: clock, predicate: predicate,
                minimum: minimum, maximum: maximum, deletes: deletes, versionsKeep: keep, references: references)
        }
    }
}
