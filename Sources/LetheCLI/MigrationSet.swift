import Foundation
import LetheConfiguration
import Store

/// The migrations a command applies: a directory named by `--migrations`, then
/// `LETHE_MIGRATIONS_DIR`, then the config's `migrations.directory`; with none of them, the
/// migrations embedded in this binary (the same bytes, so the same checksums).
package struct MigrationSet: Sendable {
    package var files: [MigrationFile]
    /// The directory they were read from; nil for the embedded set.
    package var directory: URL?

    /// Where they came from, for messages.
    package var origin: String { directory.map { "migrations in \($0.path)" } ?? "migrations embedded in this binary" }

    package static func resolve(
        flag: String?, configured: String?, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> MigrationSet {
        guard
            let explicit = flag ?? environment["LETHE_MIGRATIONS_DIR"].flatMap({ $0.isEmpty ? nil : $0 }) ?? configured
        else {
            return MigrationSet(files: try MigrationFile.embedded(), directory: nil)
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: explicit, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw UsageError("migrations directory \(explicit) does not exist or is not a directory")
        }
        let directory = URL(fileURLWithPath: explicit).standardizedFileURL
        return MigrationSet(files: try MigrationFile.load(directory: directory), directory: directory)
    }
}

/// Where files shipped beside Lethe are looked for: `./relative`, then `relative` beside or
/// above the executable (a build inside the repository), then `/usr/share/lethe/relative`.
package enum BundledDirectory {
    package static func candidates(_ relative: String) -> [String] {
        var candidates = [FileManager.default.currentDirectoryPath + "/" + relative]
        var directory = URL(fileURLWithPath: executablePath()).deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(directory.appendingPathComponent(relative).path)
            directory = directory.deletingLastPathComponent()
        }
        candidates.append("/usr/share/lethe/" + relative)
        return candidates
    }

    /// The first candidate holding `file`.
    package static func locate(_ relative: String, containing file: String) -> URL? {
        candidates(relative).first { FileManager.default.fileExists(atPath: $0 + "/" + file) }
            .map { URL(fileURLWithPath: $0).standardizedFileURL }
    }

    private static func executablePath() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
