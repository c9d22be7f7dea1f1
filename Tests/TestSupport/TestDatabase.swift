import Foundation
import Postgres

/// Connection settings for the integration tests, from the environment `scripts/test`
/// sets up (a throwaway PostgreSQL cluster and sshd).
public enum TestEnvironment {
    /// A superuser connection URL to the throwaway cluster's `postgres` database.
    public static func databaseURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["LETHE_TEST_DATABASE_URL"], !url.isEmpty else {
            throw TestSetupError(
                "LETHE_TEST_DATABASE_URL is not set: run the tests with scripts/test, which starts a throwaway "
                    + "PostgreSQL cluster and sets it")
        }
        return url
    }

    /// The test cluster behind the throwaway PgBouncer in transaction-pooling mode.
    public static func pgBouncerURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["LETHE_TEST_PGBOUNCER_URL"], !url.isEmpty else {
            throw TestSetupError(
                "LETHE_TEST_PGBOUNCER_URL is not set: run the tests with scripts/test, which starts a throwaway "
                    + "PgBouncer and sets it")
        }
        return url
    }
}

/// A test environment that is missing or broken.
public struct TestSetupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A database of its own for one test, created from `template0` and dropped afterwards,
/// so tests can run in parallel and never see each other's schema `lethe`.
public struct TestDatabase: Sendable {
    public let name: String
    /// A connection URL to this database.
    public let url: String

    /// Creates a fresh database, runs `body`, then drops the database (even if `body` throws).
    public static func with<T>(_ body: (TestDatabase) async throws -> T) async throws -> T {
        let database = try create()
        do {
            let value = try await body(database)
            try database.drop()
            return value
        } catch {
            try? database.drop()
            throw error
        }
    }

    public static func create() throws -> TestDatabase {
        let base = try TestEnvironment.databaseURL()
        let name = "lethe_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        let admin = try Connection.connect(base)
        defer { admin.close() }
        try admin.execute("CREATE DATABASE \(SQLIdentifier.quote(name)) TEMPLATE template0")
        return TestDatabase(name: name, url: Self.url(base, database: name))
    }

    /// Drops the database, disconnecting any session still in it.
    public func drop() throws {
        let admin = try Connection.connect(try TestEnvironment.databaseURL())
        defer { admin.close() }
        try admin.execute("DROP DATABASE IF EXISTS \(SQLIdentifier.quote(name)) WITH (FORCE)")
    }

    /// A new connection to this database.
    public func connect() throws -> Connection {
        try Connection.connect(url)
    }

    /// This database through the test PgBouncer (transaction pooling).
    public func pgBouncerURL() throws -> String {
        Self.url(try TestEnvironment.pgBouncerURL(), database: name)
    }

    /// `base` pointing at `database` instead.
    static func url(_ base: String, database: String) -> String {
        ConnectionString.withDatabase(base, database)
    }
}
