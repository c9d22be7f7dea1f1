import LetheConfiguration
import Retention
import Store

/// The entity-type registry: read from the database by every command; synced from this
/// process's configuration file only by the coordinator, `lethe run` and `lethe policy sync`.
extension CommandContext {
    /// The registry in force, read from the database (never from this command's file) and
    /// checked against the live catalog. None synced yet is a usage error (exit 2).
    package func registry() async throws -> CompiledRegistry {
        try await withDatabase(name: "lethe-registry") { try RegistryInForce.load(on: $0) }
    }

    /// Syncs the configuration file's registry into the database, unless it differs from
    /// the registry in force in ways that need `confirm` (then nothing is written).
    package func syncRegistry(confirm: Bool, by command: String) async throws -> RegistryInForce.SyncReport {
        let (configuration, path) = (configuration, configurationPath)
        return try await withDatabase(name: "lethe-registry") { connection in
            try configuration.syncRegistry(path: path, by: command, confirm: confirm, on: connection)
        }
    }

    /// The coordinator's sync at start: safe differences are synced; any that needs
    /// confirming is refused and logged (each change, at warning level), and the process
    /// keeps running on the registry in force.
    /// Returns the check the leader repeats every `coordinator.registry_check_interval`.
    func syncRegistryAsCoordinator(by command: String) async throws -> RegistryTick {
        let report = try await syncRegistry(confirm: false, by: command)
        return RegistryTick(
            after: report, configuration: configuration, path: configurationPath, command: command, logger: logger)
    }
}
