import Foundation
import LetheConfiguration
import Postgres
import Store

/// The checks behind `/healthz` and `/readyz`, injected into the endpoint so the command
/// decides what "ready" means.
struct HealthChecks: Sendable {
    /// Liveness: nil when the process can reach the database, else a one-line reason.
    var live: @Sendable () async -> String?
    /// Readiness: every reason the process should not get work yet (empty when ready).
    var ready: @Sendable () async -> [String]
    /// Ends what the checks hold (their database thread).
    var close: @Sendable () async -> Void = {}
}

extension HealthChecks {
    /// Libpq settings for the probes' own connection: a probe answers within seconds even
    /// when the database does not.
    static let probeDefaults = [("connect_timeout", "3"), ("options", "-c statement_timeout=3000")]

    /// The checks of `coordinator`, `worker` and `run`, on a connection of their own: live
    /// when `SELECT 1` answers; ready when the schema is exactly what this binary knows (the
    /// embedded migrations, or the configured directory: `SchemaCompatibility`, the check the
    /// services run before they start) and a registry was synced.
    static func standard(_ context: CommandContext) -> HealthChecks {
        let thread = ConnectionThread(
            conninfo: context.conninfo, name: "lethe-health", applicationName: "lethe health",
            defaults: probeDefaults)
        let known = Result {
            try MigrationSet.resolve(flag: nil, configured: context.configuration.migrationsDirectory).files
        }
        return HealthChecks(
            live: {
                do {
                    try await thread.run { try HealthQueries.ping(on: $0) }
                    return nil
                } catch {
                    return "database unreachable: \(error)"
                }
            },
            ready: {
                do {
                    let known = try known.get()
                    return try await thread.run { try readiness(known: known, on: $0) }
                } catch let error as PostgresError {
                    return ["database unreachable: \(error)"]
                } catch {
                    return ["\(error)"]
                }
            },
            close: { await thread.shutdown() })
    }

    /// What keeps a process from being ready, read on `connection`.
    static func readiness(known: [MigrationFile], on connection: Connection) throws -> [String] {
        if let problem = try SchemaCompatibility.check(connection, known: known) {
            // Before 0007 (lethe.registry_source) the schema problem says it all.
            guard problem.applied >= 7 else { return [problem.description] }
            return [problem.description] + (try RegistrySource.exists(on: connection) ? [] : [Self.unsynced])
        }
        return try RegistrySource.exists(on: connection) ? [] : [Self.unsynced]
    }

    static let unsynced = "no entity-type registry synced yet: run `lethe policy sync` or start a coordinator"
}
