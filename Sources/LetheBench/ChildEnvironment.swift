import Foundation
import LetheCLI

/// The environment of a `lethe` child process (the benchmarks' workers): this process's,
/// with the connection string in `LETHE_DATABASE_URL`. A connection string never goes on a
/// child's command line (anyone can read it with `ps`) or into a file others can read.
enum ChildEnvironment {
    static func with(
        databaseURL: String, base: [String: String] = ProcessInfo.processInfo.environment
    ) -> [String: String] {
        var environment = base
        environment["LETHE_DATABASE_URL"] = databaseURL
        return environment
    }
}
