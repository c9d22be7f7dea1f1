import Foundation
import Postgres
import Store

extension CommandContext {
    /// The master key from `LETHE_MASTER_KEY_FILE`, else `archive.master_key_file`; nil when
    /// neither is set. An unreadable or malformed file is a usage error (exit 2) naming the
    /// file, never its content.
    func masterKey(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> MasterKey? {
        let fromEnvironment = environment["LETHE_MASTER_KEY_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        guard let path = fromEnvironment ?? configuration.values["archive.master_key_file"] else { return nil }
        do {
            return try MasterKey(contentsOf: path)
        } catch {
            throw UsageError(
                error.description + (fromEnvironment == nil ? " (archive.master_key_file)" : " (LETHE_MASTER_KEY_FILE)")
            )
        }
    }

    /// The archive settings from the file (`archive.*`), with their defaults, checked once.
    func archiveOptions(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ArchiveOptions {
        let options = ArchiveOptions(
            masterKey: try masterKey(environment: environment),
            spoolDirectory: configuration.values["archive.spool_directory"] ?? "/var/tmp/lethe-spool",
            splitSize: configuration.byteSize("archive.split_size") ?? 2_000_000_000,
            compressionLevel: configuration.integer("archive.compression_level") ?? 1,
            maxRootsPerType: configuration.integer("archive.max_roots_per_type") ?? 1_000_000,
            siteTimeout: configuration.duration("archive.site_timeout") ?? .seconds(30),
            uploadAttempts: configuration.integer("archive.upload_attempts") ?? 3,
            keepLocal: configuration.boolean("archive.keep_local") ?? false)
        guard options.siteTimeout > .zero else {
            throw UsageError("archive.site_timeout must be positive; expected \(Configuration.Kind.duration.accepted)")
        }
        guard options.spoolDirectory.hasPrefix("/") else {
            throw UsageError(
                "archive.spool_directory \"\(options.spoolDirectory)\" is not allowed; expected an absolute path")
        }
        return options
    }
}

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
