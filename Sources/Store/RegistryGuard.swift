import Postgres

/// Keeps deletions on the registry in force. A registry sync holds the registry lock
/// exclusively (`RegistrySync.locked`); every deleting transaction takes it shared first, so
/// a sync waits for the batches in flight and a batch that waited for a sync sees it, then
/// checks that the registry it was compiled from is still the one in force.
public enum RegistryGuard {
    /// In a deleting transaction, before anything that decides what may be deleted: waits
    /// for a sync in flight, then throws `RegistryChanged` when `registry` is no longer the
    /// registry in force (a worker then reloads it before its next attempt).
    public static func check(_ version: String?, on connection: Connection) throws {
        try connection.execute("SELECT pg_advisory_xact_lock_shared($1)", [RegistrySync.lockKey])
        guard let version else { return }
        let current = try inForce(on: connection)
        if current != version { throw RegistryChanged(compiled: version, inForce: current) }
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
