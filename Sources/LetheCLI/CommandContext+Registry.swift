import Postgres
import Retention
import Store

/// Retention settings (`retention.*`) and the entity-type registry checked against the
/// live database.
extension CommandContext {
    var checkInterval: Duration { configuration.duration("retention.check_interval") ?? .seconds(3600) }
    var orphanInterval: Duration { configuration.duration("retention.orphan_interval") ?? .seconds(86_400) }
    var noticeInterval: Duration { configuration.duration("retention.notice_interval") ?? .seconds(3600) }
    var maxBatches: Int { configuration.integer("retention.max_batches") ?? 100 }

    /// The registry, checked against the database (tables, columns, clock types,
    /// predicates); with `sync`, also written to `lethe.entity_types` and `lethe.blob_stores`.
    /// A mismatch is a configuration error (exit 2) naming the file, key and value.
    func registry(sync: Bool) async throws -> CompiledRegistry {
        let (registry, checkInterval) = (configuration.registry, self.checkInterval)
        let source = configurationPath ?? "(none)"
        do {
            return try await withDatabase(name: "lethe-registry") { connection in
                let compiled = try RegistryCatalog.compile(registry, on: connection)
                if sync { try RegistrySync.sync(compiled, defaultCheckInterval: checkInterval, on: connection) }
                return compiled
            }
        } catch let error as RegistryError {
            throw UsageError("configuration file \(source): \(error)")
        }
    }
}
