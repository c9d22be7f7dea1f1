import Foundation
import LetheConfiguration
import Postgres
import Store

/// The checks behind `/healthz` and `/readyz`, injected into the endpoint so the command
/// decides what "ready" means (the lead swaps in the schema check against the embedded
/// migrations when it lands).
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
    /// when `SELECT 1` answers; ready when the schema is migrated (to the newest migration in
    /// the migrations directory, when one is found) and a registry was synced.
    static func standard(_ context: CommandContext) -> HealthChecks {
        let thread = ConnectionThread(
            conninfo: context.conninfo, name: "lethe-health", applicationName: "lethe health",
            defaults: probeDefaults)
        let expected = try? MigrationsDirectory.resolve(
            flag: nil, configured: context.configuration.migrationsDirectory
        )
        .path
        let newest = expected.flatMap { try? MigrationFile.load(directory: URL(fileURLWithPath: $0)) }?
            .map(\.version).max()
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
                    return try await thread.run { try readiness(newest: newest, on: $0) }
                } catch {
                    return ["database unreachable: \(error)"]
                }
            },
            close: { await thread.shutdown() })
    }

    /// What keeps a process from being ready, read on `connection`.
    static func readiness(newest: Int?, on connection: Connection) throws -> [String] {
        guard let version = try HealthQueries.schemaVersion(on: connection), version > 0 else {
            return ["the database is not migrated (no lethe.schema_migrations): run `lethe migrate`"]
        }
        var problems: [String] = []
        if let newest, version < newest {
            problems.append("the schema is at migration \(version), this lethe needs \(newest): run `lethe migrate`")
        } else if let newest, version > newest {
            problems.append("the schema is at migration \(version), newer than this lethe knows (\(newest))")
        }
        // lethe.registry_source arrived with migration 0007: before it, the schema problem says it all.
        if version >= 7, !(try RegistrySource.exists(on: connection)) {
            problems.append("no entity-type registry synced yet: run `lethe policy sync` or start a coordinator")
        }
        return problems
    }
}
