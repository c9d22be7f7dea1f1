import Retention
import Testing
import Worker

@testable import LetheConfiguration

/// `throttle.*` and `retention.target_batch_duration`, without a database.
@Suite struct ThrottleConfigurationTests {
    @Test func defaultsPauseOnLagAndOldTransactionsAndHoldOneHundredFiftyMilliseconds() throws {
        let settings = try Configuration().throttleSettings(path: nil)
        #expect(settings.limits == ThrottleLimits())
        #expect(settings.limits.replicationLag == .seconds(30))
        #expect(settings.limits.transactionAge == .seconds(600))
        #expect(settings.limits.walBytesPerSecond == nil)
        #expect(settings.limits.lockWaits == 0)
        #expect(settings.checkInterval == .seconds(5))
        #expect(settings.targetBatchDuration == .milliseconds(150))
        #expect(settings.floorRate == 0)  // pause
        #expect(settings.lagQuery.contains("pg_stat_replication"))
    }

    @Test func readsEveryThrottleKeyAndZeroTurnsOff() throws {
        let config = try Configuration.parse(
            """
            throttle:
              check_interval: 2s
              max_replication_lag: 0
              max_transaction_age: 1h
              max_wal_rate: 50MB
              max_lock_waits: 3
              floor_rate: 250
              replication_lag_query: SELECT lag FROM ops.fake_lag
            retention:
              target_batch_duration: 0
            """, source: "lethe.yml")
        let settings = try config.throttleSettings(path: "lethe.yml")
        #expect(settings.checkInterval == .seconds(2))
        #expect(settings.limits.replicationLag == nil)
        #expect(settings.limits.transactionAge == .seconds(3600))
        #expect(settings.limits.walBytesPerSecond == 50_000_000)
        #expect(settings.limits.lockWaits == 3)
        #expect(settings.floorRate == 250)
        #expect(settings.lagQuery == "SELECT lag FROM ops.fake_lag")
        #expect(settings.targetBatchDuration == nil)
        let off = try Configuration.parse("throttle:\n  enabled: false\n", source: "lethe.yml")
        #expect(try off.throttleSettings(path: "lethe.yml").limits == .none)
    }

    @Test(arguments: [
        ("throttle:\n  max_replication_lag: soon\n", "key throttle.max_replication_lag has the value \"soon\""),
        ("throttle:\n  max_transaction_age: 500ms\n", "0 (off) or a duration from 1s"),
        ("throttle:\n  max_lock_waits: -1\n", "a whole number from 0"),
        ("throttle:\n  max_wal_rate: fast\n", "key throttle.max_wal_rate"),
        ("retention:\n  target_batch_duration: 1ms\n", "0 (off) or a duration from 10ms"),
        ("throttle:\n  pause: 1s\n", "unknown key throttle.pause"),
        ("throttle:\n  floor_rate: -5\n", "key throttle.floor_rate has the value \"-5\""),
        ("throttle:\n  floor_rate: 10/s\n", "a whole number from 0 to 1000000"),
    ])
    func badValuesAreRefusedWithTheKeyNamed(yaml: String, expected: String) {
        let error = #expect(throws: UsageError.self) { try Configuration.parse(yaml, source: "lethe.yml") }
        #expect(error?.description.contains(expected) == true, "\(error?.description ?? "")")
    }

    @Test func aTooShortCheckIntervalOrBlankLagQueryIsRefused() throws {
        for (yaml, expected) in [
            ("throttle:\n  check_interval: 10ms\n", "key throttle.check_interval has the value \"10ms\""),
            ("throttle:\n  replication_lag_query: \"  \"\n", "key throttle.replication_lag_query is empty"),
        ] {
            let config = try Configuration.parse(yaml, source: "lethe.yml")
            let error = #expect(throws: UsageError.self) { try config.throttleSettings(path: "lethe.yml") }
            #expect(error?.description.contains(expected) == true, "\(error?.description ?? "")")
            #expect(error?.description.contains("lethe.yml") == true)
        }
    }
}
