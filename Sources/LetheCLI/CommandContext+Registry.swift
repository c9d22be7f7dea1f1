import Logging
import Postgres
import Retention
import Store

/// Retention settings (`retention.*`) and the entity-type registry: read from the database
/// by every command; synced from this process's configuration file only by the coordinator,
/// `lethe run` and `lethe policy sync`.
extension CommandContext {
    var checkInterval: Duration { configuration.duration("retention.check_interval") ?? .seconds(3600) }
    var orphanInterval: Duration { configuration.duration("retention.orphan_interval") ?? .seconds(86_400) }
    var noticeInterval: Duration { configuration.duration("retention.notice_interval") ?? .seconds(3600) }
    var maxBatches: Int { configuration.integer("retention.max_batches") ?? 100 }

    /// The registry in force, read from the database (never from this command's file) and
    /// checked against the live catalog. None synced yet is a usage error (exit 2).
    package func registry() async throws -> CompiledRegistry {
        try await withDatabase(name: "lethe-registry") { try RegistryInForce.load(on: $0) }
    }

    /// This process's configuration file's registry, checked against the live catalog; a
    /// mismatch is a configuration error (exit 2) naming the file, key and value.
    func configuredRegistry(on connection: Connection) throws -> CompiledRegistry {
        do {
            return try RegistryCatalog.compile(configuration.registry, on: connection)
        } catch let error as RegistryError {
            throw UsageError("configuration file \(configurationPath ?? "(none)"): \(error)")
        }
    }

    /// Syncs the configuration file's registry into the database, unless it differs from
    /// the registry in force in ways that need `confirm` (then nothing is written).
    package func syncRegistry(confirm: Bool, by command: String) async throws -> RegistryInForce.SyncReport {
        let (text, path, interval) = (configuration.registryText, configurationPath, checkInterval)
        return try await withDatabase(name: "lethe-registry") { connection in
            let compiled = try configuredRegistry(on: connection)
            return try RegistryInForce.sync(
                compiled, text: text, configPath: path, by: command, confirm: confirm,
                defaultCheckInterval: interval, on: connection)
        }
    }

    /// The coordinator's sync at start: safe differences are synced; any that needs
    /// confirming is refused and logged (each change, at warning level), and the process
    /// keeps running on the registry in force.
    /// Returns the check the leader repeats every `coordinator.registry_check_interval`.
    func syncRegistryAsCoordinator(by command: String) async throws -> RegistryTick {
        let report = try await syncRegistry(confirm: false, by: command)
        Self.log(report, configurationPath: configurationPath, logger: logger)
        let fileSHA = RegistryText.sha256(configuration.registryText)
        return RegistryTick(
            path: configurationPath,
            interval: configuration.duration("coordinator.registry_check_interval") ?? .seconds(60),
            defaultCheckInterval: checkInterval, command: command, logger: logger, fileSHA: fileSHA,
            inForceSHA: report.applied ? fileSHA : report.previous?.sha256)
    }

    static func log(_ report: RegistryInForce.SyncReport, configurationPath: String?, logger: Logger) {
        let file = configurationPath ?? "(no configuration file)"
        if report.applied {
            if report.previous == nil {
                logger.notice("synced the entity-type registry from \(file) into an empty registry")
            } else if !report.changes.isEmpty {
                logger.notice(
                    "the configuration \(file) differed from the registry in force; synced it",
                    metadata: ["changes": .array(report.changes.map { .string($0.text) })])
                for change in report.changes { logger.notice("registry change: \(change.text)") }
            }
            return
        }
        let origin = report.previous?.origin ?? "?"
        logger.warning(
            """
            refused to sync the entity-type registry from \(file): it differs from the registry in force \
            (synced by \(origin)) in ways that need `lethe policy sync --confirm`; running on the registry in force
            """)
        for change in report.changes {
            logger.warning("registry difference: \(change)")
        }
    }
}
