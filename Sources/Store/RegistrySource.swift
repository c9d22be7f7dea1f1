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

    /// The active entity types of a database synced before the registry was kept as text
    /// (no `lethe.registry_source` row): name, min and max as PostgreSQL prints them.
    public static func legacyTypes(on connection: Connection) throws -> [(name: String, min: String, max: String)] {
        try connection.query(
            "SELECT name, min_interval::text, max_interval::text FROM lethe.entity_types WHERE active ORDER BY name"
        ).map { try $0.decode((String, String, String).self) }
    }
}
