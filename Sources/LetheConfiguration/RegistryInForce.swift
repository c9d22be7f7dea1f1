import Foundation
import Postgres
import Retention
import Store

/// The entity-type registry in force: read from the database by every command, written
/// only by a sync (`lethe policy sync`, the coordinator, `lethe run`). A sync that could
/// delete what the registry in force keeps, or stop what it runs, needs confirming.
package enum RegistryInForce {
    package static let missing =
        "no entity-type registry in the database yet; run `lethe policy sync` (or start the coordinator)"

    /// What a sync found and did.
    package struct SyncReport: Sendable {
        /// Every difference from the registry in force (empty when the text is unchanged).
        package var changes: [RegistryChange]
        /// False when changes needed `--confirm` and it was not given: nothing was written.
        package var applied: Bool
        /// The registry in force before this sync (nil: none yet).
        package var previous: RegistrySource?

        package var needingConfirmation: [RegistryChange] { changes.filter(\.needsConfirmation) }
    }

    /// The stored registry and what it declares, or nil when none was synced.
    package static func read(on connection: Connection) throws -> (source: RegistrySource, registry: Registry)? {
        guard let source = try RegistrySource.current(on: connection) else { return nil }
        return (source, try RegistryText.parse(source.text, source: label(source)))
    }

    static func label(_ source: RegistrySource) -> String {
        "the registry in force (synced by \(source.origin))"
    }

    /// The registry in force, checked against the live catalog. None yet, or one the schema
    /// no longer matches, is a configuration error (exit 2).
    package static func load(on connection: Connection) throws -> CompiledRegistry {
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
    package static func require(on connection: Connection) throws {
        guard try RegistrySource.exists(on: connection) else {
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
    package static func syncBenchmark(
        _ configuration: Configuration, on connection: Connection
    ) throws -> CompiledRegistry {
        let compiled = try RegistryCatalog.compile(configuration.registry, on: connection)
        _ = try sync(
            compiled, text: configuration.registryText, configPath: nil, by: "lethe bench", confirm: true,
            defaultCheckInterval: .seconds(3600), on: connection)
        return compiled
    }

    /// Against a database synced before the registry was kept as text: every active type as
    /// `lethe.entity_types` has it (removed, bounds, table, key, account, clock, predicate,
    /// keep-only, versions, blob columns). The first sync into an empty registry needs no confirming.
    static func legacyChanges(_ registry: Registry, on connection: Connection) throws -> [RegistryChange] {
        var changes: [RegistryChange] = []
        func add(_ text: String) { changes.append(RegistryChange(text, needsConfirmation: true)) }
        for old in try RegistrySource.legacyTypes(on: connection) {
            let name = old.name
            guard let type = registry.entityType(named: name) else {
                add(
                    "entity type \(name) is no longer configured: it is deactivated and no account's \(name) are deleted any more"
                )
                continue
            }
            if let minimum = PostgresInterval.parse(old.minimum), RegistryChanges.shortens(minimum, type.bounds.minimum)
            {
                add("entity type \(name): min changes from \(minimum) to \(type.bounds.minimum) (lowered)")
            }
            if let maximum = PostgresInterval.parse(old.maximum), maximum != type.bounds.maximum {
                add("entity type \(name): max changes from \(maximum) to \(type.bounds.maximum)")
            }
            let now: [(String, String, String)] = [
                ("table", old.table, type.table.description), ("key", old.key, type.key.joined(separator: ",")),
                ("account", old.account, type.account), ("clock", old.clock, type.clock),
                ("predicate (where)", old.predicate ?? "none", type.predicate ?? "none"),
            ]
            for (what, before, after) in now where before != after {
                add("entity type \(name): \(what) changes from \(before) to \(after)")
            }
            if !old.deletes && type.deletes { add("entity type \(name): a keep-only type now deletes") }
            if let kept = old.versionsKeep, (type.versions?.keep ?? 0) < kept {
                add("entity type \(name): fewer versions kept (\(kept) → \(type.versions?.keep ?? 0))")
            }
            let current = Set(
                registry.blobStores.flatMap { store in
                    Registry(entityTypes: [type]).references(to: store.name).map {
                        "\(store.name) \($0.table).\($0.column)"
                    }
                })
            for reference in old.references where !current.contains(reference) {
                add("entity type \(name): blob reference \(reference) removed (it stops protecting blobs)")
            }
        }
        return changes
    }
}
