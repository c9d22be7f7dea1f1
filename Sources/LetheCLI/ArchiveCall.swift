import LetheConfiguration
import Postgres
import Store

/// One call for the archive commands: the refusals of Lethe's SQL functions (no such
/// file, a file in the wrong state, archiving off) and of the archive settings become
/// usage errors (exit 2) with the database's message and hint.
enum ArchiveCall {
    /// PolicyCall's refusals and `object_not_in_prerequisite_state`.
    static let refusals = PolicyCall.refusals.union(["55000"])

    /// Runs `body` on its own connection; with `needsRegistry`, after checking that an
    /// entity-type registry is in force, as the account commands do.
    @discardableResult
    static func run<T: Sendable>(
        _ context: CommandContext, needsRegistry: Bool = false, _ body: @escaping @Sendable (Connection) throws -> T
    ) async throws -> T {
        do {
            return try await PolicyCall.run(
                context, name: "lethe-archive", needsRegistry: needsRegistry, refusals: refusals, body)
        } catch let error as ArchiveSettingsError {
            throw UsageError(error.description)
        } catch let error as MasterKeyError {
            throw UsageError(error.description)
        }
    }

    /// For the commands that seal nothing: `body` with an administration without the master
    /// key, in the context of a command given `global`, logging as `label`.
    @discardableResult
    static func administer<T: Sendable>(
        _ global: GlobalOptions, label: String = "lethe.archive", needsRegistry: Bool = false,
        _ body: @escaping @Sendable (ArchiveAdministration, Connection) throws -> T
    ) async throws -> T {
        let context = try CommandContext(global, label: label)
        return try await run(context, needsRegistry: needsRegistry) {
            try body(ArchiveAdministration(masterKey: nil), $0)
        }
    }
}
