import Testing

@testable import LetheConfiguration

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

@Suite struct QueueConfigurationTests {
    @Test func typedValuesAreCheckedWithTheKeyNamed() {
        let duration = #expect(throws: UsageError.self) {
            try Configuration.parse("worker:\n  lease: soon\n", source: "lethe.yml")
        }
        #expect(duration?.description.contains("key worker.lease has the value \"soon\"") == true)
        #expect(duration?.description.contains("30s") == true)
        let count = #expect(throws: UsageError.self) {
            try Configuration.parse("worker:\n  concurrency: 0\n", source: "lethe.yml")
        }
        #expect(count?.description.contains("at least 1") == true)
        let flag = #expect(throws: UsageError.self) {
            try Configuration.parse("worker:\n  listen: maybe\n", source: "lethe.yml")
        }
        #expect(flag?.description.contains("true or false") == true)
    }

    @Test func unknownSectionKeysListWhatIsAccepted() {
        let error = #expect(throws: UsageError.self) {
            try Configuration.parse("worker:\n  slots: 4\n", source: "lethe.yml")
        }
        #expect(error?.description.contains("unknown key worker.slots") == true)
        #expect(error?.description.contains("concurrency") == true)
    }

    @Test func readsQueueSettings() throws {
        let config = try Configuration.parse(
            "worker:\n  lease: 20s\n  listen: false\n  concurrency: 16\nqueue:\n  retry_base: 250ms\n", source: "x.yml")
        #expect(config.duration("worker.lease") == .seconds(20))
        #expect(config.boolean("worker.listen") == false)
        #expect(config.integer("worker.concurrency") == 16)
        #expect(config.duration("queue.retry_base") == .milliseconds(250))
    }
}
