import Postgres
import Retention
import Store

/// Retention settings (`retention.*`) and this file's entity-type registry, which only the
/// coordinator, `lethe run` and `lethe policy sync` bring into force.
extension Configuration {
    package var checkInterval: Duration { duration("retention.check_interval") ?? .seconds(3600) }
    package var orphanInterval: Duration { duration("retention.orphan_interval") ?? .seconds(86_400) }
    package var noticeInterval: Duration { duration("retention.notice_interval") ?? .seconds(3600) }
    package var maxBatches: Int { integer("retention.max_batches") ?? 100 }

    /// This file's registry, checked against the live catalog; a mismatch is a configuration
    /// error (exit 2) naming the file (`path`), key and value.
    package func compiledRegistry(on connection: Connection, path: String?) throws -> CompiledRegistry {
        do {
            return try RegistryCatalog.compile(registry, on: connection)
        } catch let error as RegistryError {
            throw UsageError("configuration file \(path ?? "(none)"): \(error)")
        }
    }

    /// Syncs this file's registry into the database, unless it differs from the registry in
    /// force in ways that need `confirm` (then nothing is written).
    package func syncRegistry(
        path: String?, by command: String, confirm: Bool, on connection: Connection
    ) throws -> RegistryInForce.SyncReport {
        try RegistryInForce.sync(
            compiledRegistry(on: connection, path: path), text: registryText, configPath: path, by: command,
            confirm: confirm, defaultCheckInterval: checkInterval, on: connection)
    }
}
