import Foundation
import LetheConfiguration
import Logging
import Postgres
import Store

/// What a subcommand needs before it runs: the configuration file, the log level and the
/// database connection, each resolved from flag, environment and file in that order.
package struct CommandContext {
    package var configuration: Configuration
    var configurationPath: String?
    /// The libpq conninfo; empty means libpq's own `PG*` environment variables.
    package var conninfo: String
    package var logger: Logger

    package init(
        _ options: GlobalOptions, label: String, environment: [String: String] = ProcessInfo.processInfo.environment
    )
        throws
    {
        let path = options.configPath ?? environment["LETHE_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        configuration =
            try path.map { path throws(UsageError) in try Configuration.load(path: path) } ?? Configuration()
        configurationPath = path

        let levelText = options.logLevel ?? environment["LETHE_LOG_LEVEL"] ?? configuration.logLevel ?? "info"
        guard let level = Logger.Level(rawValue: levelText.lowercased()) else {
            throw UsageError(
                "invalid log level \"\(levelText)\"; accepted: "
                    + Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))
        }
        let formatText = options.logFormat ?? environment["LETHE_LOG_FORMAT"] ?? configuration.logFormat ?? "text"
        guard let format = LetheLogging.Format(rawValue: formatText) else {
            throw UsageError(
                "invalid log format \"\(formatText)\"; accepted: "
                    + LetheLogging.Format.allCases.map(\.rawValue).joined(separator: ", "))
        }
        LetheLogging.bootstrap(level: level, format: format)
        logger = Logger(label: label)

        conninfo = options.databaseURL ?? environment["LETHE_DATABASE_URL"] ?? configuration.databaseURL ?? ""
        if !conninfo.isEmpty {
            try ConnectionString.validate(conninfo)
        }
    }

    /// A dedicated database thread for this command's work.
    package func connectionThread(name: String) -> ConnectionThread {
        ConnectionThread(conninfo: conninfo, name: name)
    }
}

extension CommandContext {
    /// Runs `body` on a dedicated database thread and closes it afterwards. Refuses a server
    /// older than Lethe supports (`ServerRequirement`) before `body` runs any SQL.
    @discardableResult
    package func withDatabase<T: Sendable>(
        name: String, _ body: @escaping @Sendable (Connection) throws -> T
    ) async throws
        -> T
    {
        let thread = connectionThread(name: name)
        do {
            let value = try await thread.run { connection in
                try ServerRequirement.check(connection)
                return try body(connection)
            }
            await thread.shutdown()
            return value
        } catch {
            await thread.shutdown()
            throw error
        }
    }
}
