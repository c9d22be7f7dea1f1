import Foundation
import Postgres
import TestSupport
import Testing

/// Refusals that keep deletion safe, as a user of the `lethe` executable meets them.
@Suite struct SafetyCommandTests {
    @Test func anAccountIdThatAliasesAnotherIsRefusedWithExitTwo() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(TestSchema.sql)  // bigint account columns
            let path = try writeConfig(
                """
                database: { url: "\(database.url)" }
                \(RegistryConfigurationTests.good)
                """)
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(try LetheProcess.run(["policy", "sync", "--config", path]).status == 0)
            let added = try LetheProcess.run(["account", "add", "1", "--config", path])
            #expect(added.status == 0, "\(added.output)")
            let alias = try LetheProcess.run(["account", "add", "01", "--config", path])
            #expect(alias.status == 2, "\(alias.output)")
            #expect(alias.stderr.contains("account id \"01\" is not written as bigint writes it"), "\(alias.stderr)")
            #expect(alias.stderr.contains("did you mean \"1\"?"))
            #expect(try connection.scalar("SELECT count(*) FROM lethe.accounts", as: Int.self) == 1)
        }
    }

    @Test(arguments: ["retention.lock_timeout", "retention.statement_timeout"])
    func deletionTimeoutsMustBePositive(key: String) throws {
        let (section, name) = (key.split(separator: ".")[0], key.split(separator: ".")[1])
        for (value, expected) in [
            ("0s", "key \(key) has the value \"0s\"; expected a positive duration of at most 3w3d20h31m23s647ms"),
            ("30d", "key \(key) has the value \"30d\"; expected a positive duration"),
            ("soon", "key \(key) has the value \"soon\"; expected a number with a unit"),
        ] {
            let path = try writeConfig("\(section):\n  \(name): \(value)\n")
            defer { try? FileManager.default.removeItem(atPath: path) }
            for command in ["worker", "run"] {
                // Refused before anything connects: no database is configured at all.
                let result = try LetheProcess.run([command, "--until-idle", "--config", path])
                #expect(result.status == 2, "\(command) \(value): \(result.output)")
                #expect(result.stderr.contains(expected), "\(command) \(value): \(result.stderr)")
                #expect(result.stderr.contains(path))
            }
        }
    }
}
