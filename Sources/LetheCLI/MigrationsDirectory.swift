import Foundation
import LetheConfiguration
import Store

/// Finds the `migrations/` directory: the flag, `LETHE_MIGRATIONS_DIR`, the config's
/// `migrations.directory`, `./migrations`, a `migrations/` beside or above the executable
/// (a build inside the repository), then `/usr/share/lethe/migrations`.
package enum MigrationsDirectory {
    package static func resolve(
        flag: String?, configured: String?, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> URL {
        if let explicit = flag ?? environment["LETHE_MIGRATIONS_DIR"] ?? configured {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: explicit, isDirectory: &isDirectory), isDirectory.boolValue
            else {
                throw UsageError("migrations directory \(explicit) does not exist or is not a directory")
            }
            return URL(fileURLWithPath: explicit)
        }
        let candidates = BundledDirectory.candidates("migrations")
        for candidate in candidates where containsMigrations(candidate) {
            return URL(fileURLWithPath: candidate).standardizedFileURL
        }
        throw MigrationError.directoryNotFound(searched: candidates)
    }

    private static func containsMigrations(_ path: String) -> Bool {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.contains { $0.hasPrefix("0001_") && $0.hasSuffix(".sql") }
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
