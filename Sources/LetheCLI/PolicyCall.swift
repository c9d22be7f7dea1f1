import Foundation
import LetheConfiguration
import Postgres
import Retention
import Store

/// What the account and policy commands share: one call into Lethe's SQL functions, with
/// the refusals those functions raise (a bad interval, an unknown account) turned into
/// usage errors (exit 2) carrying the database's message.
enum PolicyCall {
    static let refusals: Set<String> = ["22023", "P0002", "23505", "42501", "22P02", "22007", "22008", "23514"]

    /// Runs `body` on its own connection, after checking that an entity-type registry is in force.
    @discardableResult
    static func run<T: Sendable>(
        _ context: CommandContext, _ body: @escaping @Sendable (Connection) throws -> T
    ) async throws -> T {
        try await run(context, name: "lethe-policy", needsRegistry: true, refusals: refusals, body)
    }

    /// `run(_:_:)` in the context of a command given `global`, logging as `label`.
    @discardableResult
    static func run<T: Sendable>(
        _ global: GlobalOptions, label: String, _ body: @escaping @Sendable (Connection) throws -> T
    ) async throws -> T {
        try await run(try CommandContext(global, label: label), body)
    }

    /// Runs `body` on a connection named `name` (with `needsRegistry`, after checking that a
    /// registry is in force); a `PostgresError` whose SQLSTATE is one of `refusals` becomes a
    /// usage error with the database's message and hint.
    static func run<T: Sendable>(
        _ context: CommandContext, name: String, needsRegistry: Bool, refusals: Set<String>,
        _ body: @escaping @Sendable (Connection) throws -> T
    ) async throws -> T {
        do {
            return try await context.withDatabase(name: name) { connection in
                if needsRegistry { try RegistryInForce.require(on: connection) }
                return try body(connection)
            }
        } catch let error as PostgresError where error.sqlState.map({ refusals.contains($0.rawValue) }) ?? false {
            throw UsageError(error.message + (error.hint.map { " (\($0))" } ?? ""))
        }
    }

    /// An interval from the command line (`30d`, `6mo`, `1y`) as PostgreSQL interval text.
    static func interval(_ text: String, option: String) throws -> String {
        guard let interval = RetentionInterval.parse(text) else {
            throw UsageError("\(option) \"\(text)\" is not an interval; expected \(RetentionInterval.accepted)")
        }
        return interval.postgresText
    }

    /// An interval PostgreSQL printed (`1 year 6 mons`) in Lethe's notation (`1y6mo`).
    static func show(_ interval: String?) -> String {
        guard let interval else { return "-" }
        return PostgresInterval.parse(interval)?.description ?? interval
    }
}
