import Testing

@testable import LetheCLI

/// The YAML configuration file, without a database.
@Suite struct ConfigurationTests {
    @Test func readsEveryKey() throws {
        let config = try Configuration.parse(
            """
            database:
              url: postgresql://lethe@db/app
            log:
              level: debug
            migrations:
              directory: /opt/lethe/migrations
            """, source: "lethe.yml")
        #expect(config.databaseURL == "postgresql://lethe@db/app")
        #expect(config.logLevel == "debug")
        #expect(config.migrationsDirectory == "/opt/lethe/migrations")
    }

    @Test func emptyFileIsAnEmptyConfiguration() throws {
        #expect(try Configuration.parse("", source: "empty.yml") == Configuration())
    }

    @Test func unknownKeyIsNamedWithWhatIsAccepted() {
        let error = #expect(throws: UsageError.self) {
            try Configuration.parse("database:\n  uri: x\n", source: "lethe.yml")
        }
        #expect(error?.description.contains("lethe.yml") == true)
        #expect(error?.description.contains("database.uri") == true)
        #expect(error?.description.contains("accepted at key database: url") == true)
    }

    @Test func wrongShapesAreRefused() {
        #expect(throws: UsageError.self) { try Configuration.parse("- a\n- b\n", source: "x.yml") }
        #expect(throws: UsageError.self) { try Configuration.parse("database: here\n", source: "x.yml") }
        #expect(throws: UsageError.self) { try Configuration.parse("database:\n  url: [a, b]\n", source: "x.yml") }
        #expect(throws: UsageError.self) { try Configuration.parse("database: {url: 'x'\n", source: "x.yml") }
    }
}
