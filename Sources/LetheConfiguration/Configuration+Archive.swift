import Foundation
import Store

/// The archive settings (`archive.*`) and the master key the archive commands and workers use.
extension Configuration {
    /// The master key from `LETHE_MASTER_KEY_FILE`, else `archive.master_key_file`; nil when
    /// neither is set. An unreadable or malformed file is a usage error (exit 2) naming the
    /// file, never its content.
    package func masterKey(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> MasterKey? {
        let fromEnvironment = environment["LETHE_MASTER_KEY_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        guard let path = fromEnvironment ?? values["archive.master_key_file"] else { return nil }
        do {
            return try MasterKey(contentsOf: path)
        } catch {
            throw UsageError(
                error.description + (fromEnvironment == nil ? " (archive.master_key_file)" : " (LETHE_MASTER_KEY_FILE)")
            )
        }
    }

    /// The archive settings from the file (`archive.*`), with their defaults, checked once.
    package func archiveOptions(
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ArchiveOptions {
        var options = ArchiveOptions(
            masterKey: try masterKey(environment: environment),
            spoolDirectory: values["archive.spool_directory"] ?? "/var/tmp/lethe-spool",
            splitSize: byteSize("archive.split_size") ?? 2_000_000_000,
            compressionLevel: integer("archive.compression_level") ?? 1,
            maxRootsPerType: integer("archive.max_roots_per_type") ?? 1_000_000,
            siteTimeout: duration("archive.site_timeout") ?? .seconds(30),
            uploadAttempts: integer("archive.upload_attempts") ?? 3,
            keepLocal: boolean("archive.keep_local") ?? false)
        options.planChunkRoots = integer("archive.plan_chunk_roots") ?? options.planChunkRoots
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
