import Postgres

/// Keeps deletions on the registry in force. A registry sync holds the registry lock
/// exclusively (`RegistrySync.locked`); every deleting transaction takes it shared first, so
/// a sync waits for the batches in flight and a batch that waited for a sync sees it, then
/// checks that the registry it was compiled from is still the one in force.
public enum RegistryGuard {
    /// In a deleting transaction, before anything that decides what may be deleted: waits
    /// for a sync in flight, then throws `RegistryChanged` when `registry` is no longer the
    /// registry in force (a worker then reloads it before its next attempt).
    /// `proofs`: the unique indexes that proved the keys when the registry was compiled; if
    /// the application dropped one since (a primary key being changed while workers run),
    /// a key may no longer name one row, and nothing is deleted.
    /// The proving indexes' tables are locked ACCESS SHARE first, so no index can be dropped
    /// (DROP INDEX needs ACCESS EXCLUSIVE) between this check and the end of the transaction.
    public static func check(_ version: String?, proofs: [Int64] = [], on connection: Connection) throws {
        try connection.execute("SELECT pg_advisory_xact_lock_shared($1)", [RegistrySync.lockKey])
        if !proofs.isEmpty {
            let tables = try connection.query(
                "SELECT DISTINCT indrelid::regclass::text FROM pg_index WHERE indexrelid = ANY($1::bigint[]::oid[])",
                [proofs]
            ).map { try $0.decode(String.self, at: 0) }
            // regclass text is the table's name quoted as SQL needs it.
            if !tables.isEmpty {
                try connection.execute("LOCK TABLE \(tables.joined(separator: ", ")) IN ACCESS SHARE MODE")
            }
        }
        // A new statement, so a sync this waited for is visible.
        let (present, current) = try connection.query(
            """
            SELECT (SELECT count(*)::bigint FROM pg_index
                    WHERE indexrelid = ANY($1::bigint[]::oid[]) AND indisunique AND indisvalid),
                   (SELECT sha256 FROM lethe.registry_source ORDER BY id DESC LIMIT 1)
            """, [proofs])[0].decode((Int, String?).self)
        if present != proofs.count { throw KeyProofGone() }
        if let version, current != version { throw RegistryChanged(compiled: version, inForce: current) }
    }

    /// The SHA-256 of the registry in force, or nil when none was synced.
    public static func inForce(on connection: Connection) throws -> String? {
        try connection.query("SELECT sha256 FROM lethe.registry_source ORDER BY id DESC LIMIT 1").first?.decode(
            String.self, at: 0)
    }
}

/// The registry in force changed since this process compiled it: nothing was deleted; the
/// attempt fails and the next one runs on the new registry.
public struct RegistryChanged: Error, CustomStringConvertible {
    public var compiled: String
    public var inForce: String?
    public var description: String {
        "the entity-type registry in force changed (\(inForce.map { String($0.prefix(12)) } ?? "none") since "
            + "\(compiled.prefix(12))): nothing deleted; the next attempt runs on the new registry"
    }
}

/// A unique index that proved an entity type's key when the registry was compiled is gone:
/// nothing was deleted. Restart the workers: the registry check then says which key is no
/// longer proven unique.
public struct KeyProofGone: Error, CustomStringConvertible {
    public var description: String {
        "a unique index that proved an entity type's key was dropped or invalidated since this process checked the "
            + "registry: nothing deleted; restart the workers so the registry check names the key"
    }
}
