import Foundation
import Postgres
import Store

/// A fresh database with Lethe's migrations applied, for one test.
public func withMigratedDatabase<T>(_ body: (TestDatabase) async throws -> T) async throws -> T {
    try await TestDatabase.with { database in
        let files = try MigrationFile.load(directory: Repository.root().appendingPathComponent("migrations"))
        let connection = try database.connect()
        try Migrator(files: files).apply(connection)
        connection.close()
        return try await body(database)
    }
}

extension Connection {
    /// The single value of a one-row, one-column query.
    public func scalar<T: PostgresDecodable>(
        _ sql: String, _ parameters: [any PostgresEncodable] = [], as type: T.Type = T.self
    )
        throws -> T
    {
        try query(sql, parameters)[0].decode(T.self, at: 0)
    }
}

/// Polls `condition` every 100 ms until it holds or `timeout` passes; returns whether it held.
public func eventually(timeout: Duration, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        usleep(100_000)
    }
    return try condition()
}

/// A config file with `yaml`, removed by the caller when done.
public func writeConfig(_ yaml: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-\(UUID().uuidString).yml").path
    try yaml.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}
