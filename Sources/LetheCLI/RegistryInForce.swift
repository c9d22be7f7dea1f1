import Foundation
import Postgres
import Retention
import Store

/// The entity-type registry in force: read from the database by every command, written
/// only by a sync (`lethe policy sync`, the coordinator, `lethe run`). A sync that could
/// delete what the registry in force keeps, or stop what it runs, needs confirming.
enum RegistryInForce {
    static let missing =
        "no entity-type registry in the database yet; run `lethe policy sync` (or start the coordinator)"

    /// What a sync found and did.
    struct SyncReport: Sendable {
        /// Every difference from the registry in force (empty when the text is unchanged).
        var changes: [RegistryChange]
        /// False when changes needed `--confirm` and it was not given: nothing was written.
        var applied: Bool
        /// The registry in force before this sync (nil: none yet).
        var previous: RegistrySource?

        var needingConfirmation: [RegistryChange] { changes.filter(\.needsConfirmation) }
    }

    /// The stored registry and what it declares, or nil when none was synced.
    static func read(on connection: Connection) throws -> (source: RegistrySource, registry: Registry)? {
        guard let source = try RegistrySource.current(on: connection) else { return nil }
        return (source, try RegistryText.parse(source.text, source: label(source)))
    }

    static func label(_ source: RegistrySource) -> String {
        "the registry in force (synced by \(source.origin))"
    }

    /// The registry in force, checked against the live catalog. None yet, or one the schema
    /// no longer matches, is a configuration error (exit 2).
    static func load(on connection: Connection) throws -> CompiledRegistry {
        guard let (source, registry) = try read(on: connection) else { throw UsageError(missing) }
        do {
            var compiled = try RegistryCatalog.compile(registry, on: connection)
            compiled.version = source.sha256
            return compiled
        } catch let error as RegistryError {
            throw UsageError("\(label(source)): \(error)")
        }
    }

    /// Fails (exit 2) when no registry was synced yet.
    static func require(on connection: Connection) throws {
        let found = try connection.query("SELECT EXISTS (SELECT 1 FROM lethe.registry_source)")[0].decode(
            Bool.self, at: 0)
        guard found else {
            throw UsageError(missing)
        }
    }

    /// Syncs `configuration`'s registry, already checked against the catalog as `compiled`,
    /// unless it differs from the registry in force in ways that need `confirm`.
    static func sync(
        _ compiled: CompiledRegistry, text: String, configPath: String?, by command: String, confirm: Bool,
        defaultCheckInterval: Duration, on connection: Connection
    ) throws -> SyncReport {
        let sha = RegistryText.sha256(text)
        return try RegistrySync.locked(on: connection) { connection in
            let previous = try RegistrySource.current(on: connection)
            var changes: [RegistryChange] = []
            if let previous, previous.sha256 != sha {
                do {
                    let old = try RegistryText.parse(previous.text, source: label(previous))
                    changes = RegistryChanges.between(old, compiled.registry)
                } catch {
                    changes = [
                        RegistryChange(
                            "the registry in force cannot be read by this version (\(error)): nothing can be compared",
                            needsConfirmation: true)
                    ]
                }
            } else if previous == nil {
                changes = try legacyChanges(compiled.registry, on: connection)
            }
            let needed = changes.filter(\.needsConfirmation)
            guard needed.isEmpty || confirm else {
                return SyncReport(changes: changes, applied: false, previous: previous)
            }
            try RegistrySync.write(compiled, defaultCheckInterval: defaultCheckInterval, on: connection)
            try RegistrySource(text: text, sha256: sha, configPath: configPath, syncedBy: command).record(
                changes: needed.map(\.text), confirmed: !needed.isEmpty, on: connection)
            return SyncReport(changes: changes, applied: true, previous: previous)
        }
    }

    /// A benchmark's own throwaway database: its registry, synced without asking.
    static func syncBenchmark(_ configuration: Configuration, on connection: Connection) throws -> CompiledRegistry {
        let compiled = try RegistryCatalog.compile(configuration.registry, on: connection)
        _ = try sync(
            compiled, text: configuration.registryText, configPath: nil, by: "lethe bench", confirm: true,
            defaultCheckInterval: .seconds(3600), on: connection)
        return compiled
    }

    /// Against a database synced before the registry was kept as text: the types it has
    /// active, their min and max. The first sync into an empty registry needs no confirming.
    static func legacyChanges(_ registry: Registry, on connection: Connection) throws -> [RegistryChange] {
        var changes: [RegistryChange] = []
        for (name, minText, maxText) in try RegistrySource.legacyTypes(on: connection) {
            guard let type = registry.entityType(named: name) else {
                changes.append(
                    RegistryChange(
                        "entity type \(name) is no longer configured: it is deactivated and no account's \(name) "
                            + "are deleted any more", needsConfirmation: true))
                continue
            }
            if let minimum = PostgresInterval.parse(minText),
                RegistryChanges.shortens(minimum, type.bounds.minimum)
            {
                changes.append(
                    RegistryChange(
                        "entity type \(name): min changes from \(minimum) to \(type.bounds.minimum) (lowered)",
                        needsConfirmation: true))
            }
            if let maximum = PostgresInterval.parse(maxText),
                RegistryChanges.shortens(type.bounds.maximum, maximum)
            {
                changes.append(
                    RegistryChange(
                        "entity type \(name): max changes from \(maximum) to \(type.bounds.maximum) (raised)",
                        needsConfirmation: true))
            }
        }
        return changes
    }
}
