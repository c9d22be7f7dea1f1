import ArgumentParser
import LetheConfiguration
import Retention
import Store

extension PolicyCommand {
    /// `lethe policy types`: read-only.
    struct Types: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the entity types in force (from the database); compare a configuration file with them.",
            discussion: """
                Read-only: prints the registry in force, and, when a configuration file is given, \
                checks it against the database catalog and prints how it differs from the \
                registry in force (what `lethe policy sync` would change). Writes nothing.
                """)
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.policy")
            let file = context.configurationPath
            let (stored, fileRegistry) = try await context.withDatabase(name: "lethe-policy") { connection in
                let stored = try RegistryInForce.read(on: connection)
                let fileRegistry = try file.map { path in
                    try context.configuration.compiledRegistry(on: connection, path: path).registry
                }
                return (stored, fileRegistry)
            }
            guard let stored else {
                if let file, let fileRegistry {
                    print(
                        "the configuration file \(file) is valid against the database: \(fileRegistry.entityTypes.count) "
                            + "entity types, \(fileRegistry.blobStores.count) blob stores")
                }
                throw UsageError(RegistryInForce.missing)
            }
            print(Self.table(stored.registry))
            print("registry in force: synced by \(stored.source.origin)")
            guard let file, let fileRegistry else { return }
            let changes = RegistryChanges.between(stored.registry, fileRegistry)
            if changes.isEmpty {
                print("the configuration file \(file) matches the registry in force")
            } else {
                print(
                    "the configuration file \(file) differs from the registry in force "
                        + "(`lethe policy sync` would apply it):")
                for change in changes { print("  \(change)") }
            }
        }

        static func table(_ registry: Registry) -> String {
            var table = TextTable("TYPE", "TABLE", "CLOCK", "DEFAULT", "MIN", "MAX", "BATCH", "CHILDREN", "DELETES")
            for type in registry.entityTypes {
                table.add(
                    type.name, type.table.description, type.clock, type.bounds.defaultInterval.description,
                    type.bounds.minimum.description, type.bounds.maximum.description, "\(type.batchSize)",
                    "\(type.allChildren.count)",
                    type.deletes ? (type.versions.map { "yes, keeps newest \($0.keep)" } ?? "yes") : "never")
            }
            return registry.entityTypes.isEmpty ? "no entity types in force" : table.rendered
        }
    }

    /// `lethe policy sync [--confirm]`: the one command that writes the registry.
    struct Sync: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the configuration file's entity types and blob stores into the database.",
            discussion: """
                Checks entity_types: and blob_stores: against the database catalog and makes them \
                the registry in force, which every other command and worker reads. A change that \
                could delete what the registry in force keeps, or stop what it runs (a type or \
                blob store removed, a min lowered, a max raised, a blobs: reference removed, a \
                type's table, key, account, clock, predicate or child tables changed), is listed \
                and needs --confirm; without it nothing is written (exit 2).
                """)
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Apply changes that need confirming (each is listed first).") var confirm = false

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.policy")
            guard let file = context.configurationPath else {
                throw UsageError(
                    "lethe policy sync needs a configuration file (--config or LETHE_CONFIG): "
                        + "without one every entity type would be deactivated")
            }
            let report = try await context.syncRegistry(confirm: confirm, by: "lethe policy sync")
            let registry = context.configuration.registry
            guard report.applied else {
                let needed = report.needingConfirmation
                throw UsageError(
                    (["\(file) differs from the registry in force (synced by \(report.previous?.origin ?? "?")):"]
                        + report.changes.map { "  \($0)" }
                        + [
                            "nothing was changed: \(needed.count) change\(needed.count == 1 ? "" : "s") need "
                                + "confirming; run `lethe policy sync --confirm` to apply them"
                        ]).joined(separator: "\n"))
            }
            let summary = "\(registry.entityTypes.count) entity types and \(registry.blobStores.count) blob stores"
            if report.previous == nil, report.changes.isEmpty {
                print("synced \(summary) from \(file) into an empty registry")
            } else if report.changes.isEmpty {
                print("the registry in force already matches \(file) (\(summary)); refreshed")
            } else {
                print("synced \(summary) from \(file):")
                for change in report.changes {
                    print("  \(change.needsConfirmation ? "confirmed: " : "")\(change.text)")
                }
            }
        }
    }
}
