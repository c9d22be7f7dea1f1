import Logging
import Postgres
import Retention
import Store
import Synchronization

/// A handler built from the registry in force, rebuilt when the registry in force changes
/// (a `lethe policy sync` or a coordinator's sync while this worker runs): each task first
/// reads which registry is in force, so no task starts on a stale one. A change that lands
/// while a task runs is caught by its next deleting transaction (`RegistryGuard`), which
/// fails the attempt before deleting anything; the retry runs here again and reloads.
public final class RegistryReloadingHandler: TaskHandler {
    public let kind: TaskKind
    private let state: Mutex<(version: String?, handler: any TaskHandler)>
    private let load: @Sendable (Connection) throws -> CompiledRegistry
    private let make: @Sendable (CompiledRegistry) -> any TaskHandler

    /// `registry` is the registry in force at start; `load` reads it again; `make` builds
    /// the handler of `kind` from a registry.
    public init(
        registry: CompiledRegistry, load: @escaping @Sendable (Connection) throws -> CompiledRegistry,
        make: @escaping @Sendable (CompiledRegistry) -> any TaskHandler
    ) {
        let handler = make(registry)
        self.kind = handler.kind
        self.state = Mutex((registry.version, handler))
        self.load = load
        self.make = make
    }

    public func run(_ task: ClaimedTask, context: TaskContext) async throws -> TaskProgress {
        let (version, handler) = state.withLock { ($0.version, $0.handler) }
        let inForce = try await context.database.run { try RegistryGuard.inForce(on: $0) }
        // Nil: a key's proving index went missing; compile again even if the text is the same.
        if let version, inForce == version {
            do {
                return try await handler.run(task, context: context)
            } catch let error as KeyProofGone {
                // An index that proved a key was rebuilt (REINDEX CONCURRENTLY gives it a new
                // OID) or dropped: the next attempt compiles the registry again, which proves
                // the keys anew or refuses them.
                state.withLock { $0.version = nil }
                throw error
            }
        }
        let load = self.load
        let registry = try await context.database.run { try load($0) }
        let rebuilt = make(registry)
        state.withLock { $0 = (registry.version, rebuilt) }
        context.logger.notice("reloaded the entity-type registry in force (changed, or a key's index was rebuilt)")
        return try await rebuilt.run(task, context: context)
    }
}
