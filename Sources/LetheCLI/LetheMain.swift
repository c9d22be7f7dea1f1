import ArchiveFormat
import ArgumentParser
import Foundation
import LetheConfiguration
import Postgres
import Store

/// The `lethe` executable's entry point: parses, runs, and maps errors to exit statuses
/// (0 success, 1 runtime failure, 2 bad usage or configuration).
public enum LetheMain {
    /// Parses the command line with `root`, the `lethe` command tree, and runs the command.
    public static func main(_ root: any ParsableCommand.Type) async {
        do {
            var command = try root.parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(for: error, root: root)
        }
    }

    static func exit(for error: any Error, root: any ParsableCommand.Type) -> Never {
        if let code = error as? ExitCode { Foundation.exit(code.rawValue) }
        if isUsageError(error) {
            printError("lethe: error: \(error)")
            Foundation.exit(2)
        }
        switch root.exitCode(for: error) {
        case .success:
            root.exit(withError: error)  // --help, --version
        case .validationFailure:
            printError(root.fullMessage(for: error))
            Foundation.exit(2)
        default:
            printError("lethe: error: \(error)")
            Foundation.exit(1)
        }
    }

    /// Bad usage or configuration (exit 2), as opposed to a runtime failure (exit 1).
    static func isUsageError(_ error: any Error) -> Bool {
        switch error {
        case is UsageError, is ArchivePartsError, is MigrationError, is ArchiveSettingsError, is MasterKeyError,
            is BaselineError, is ServerVersionError:
            return true
        case let error as PostgresError: return error.code == .invalidConnectionString
        default: return false
        }
    }

    static func printError(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}
