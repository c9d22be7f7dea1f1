import Retention
import Testing

@Suite struct ThrottleTests {
    @Test func signalsOverTheirLimitsAreCausesInReasonOrder() {
        var limits = ThrottleLimits()
        limits.walBytesPerSecond = 1_000_000
        let calm = HealthSignals(
            replicationLag: 30, walBytesPerSecond: 1_000_000, oldestTransactionAge: 600, lockWaits: 0)
        #expect(Throttle.causes(calm, limits: limits).isEmpty)  // at the limit is not over it
        let unwell = HealthSignals(
            replicationLag: 31.5, walBytesPerSecond: 2_000_000, oldestTransactionAge: 601, lockWaits: 2)
        let causes = Throttle.causes(unwell, limits: limits)
        #expect(causes.map(\.reason) == [.replicationLag, .walRate, .transactionAge, .lockWaits])
        #expect(causes[0].description == "replication lag 31.5 s is over throttle.max_replication_lag 30 s")
        #expect(causes[2].description.contains("throttle.max_transaction_age 600 s"))
    }

    @Test func unmeasuredSignalsAndSignalsTurnedOffNeverThrottle() {
        // No replicas, first sample (no WAL rate), no open transaction.
        #expect(Throttle.causes(HealthSignals(), limits: ThrottleLimits()).isEmpty)
        let unwell = HealthSignals(
            replicationLag: 1e6, walBytesPerSecond: 1e12, oldestTransactionAge: 1e6, lockWaits: 1000)
        #expect(Throttle.causes(unwell, limits: .none).isEmpty)
        // The WAL rate is off by default.
        #expect(
            Throttle.causes(unwell, limits: ThrottleLimits()).map(\.reason) == [
                .replicationLag, .transactionAge, .lockWaits,
            ])
    }

    /// A lag query (`throttle.replication_lag_query`, the operator's own SQL) may return
    /// 'Infinity' or a huge sentinel such as 1e300 for "no replica connected": the worker
    /// pauses and says so; describing the value must never trap (Int64 of a non-finite or
    /// out-of-range Double crashes the whole worker process).
    @Test func infiniteAndHugeSignalsThrottleWithoutTrapping() {
        var limits = ThrottleLimits()
        limits.walBytesPerSecond = 1
        for value in [Double.infinity, 1e300, 9.3e18, -Double.infinity] {
            let signals = HealthSignals(
                replicationLag: value, walBytesPerSecond: value, oldestTransactionAge: value, lockWaits: 0)
            let causes = Throttle.causes(signals, limits: limits)
            if value > 0 {
                #expect(causes.map(\.reason) == [.replicationLag, .walRate, .transactionAge], "\(value)")
                #expect(causes.allSatisfy { !$0.description.isEmpty })
            } else {
                #expect(causes.isEmpty)
            }
        }
        // NaN compares false: an unmeasurable lag never throttles, like a missing one.
        #expect(Throttle.causes(HealthSignals(replicationLag: .nan), limits: limits).isEmpty)
    }

    @Test func batchSizeShrinksWhenSlowAndGrowsBackWhenFastWithinBounds() {
        // Starts at the floor unless told where; a start out of bounds is clamped.
        #expect(AdaptiveBatchSize(maximum: 1000, target: .milliseconds(150)).current == 100)
        #expect(AdaptiveBatchSize(maximum: 1000, target: .milliseconds(150), start: 5000).current == 1000)
        #expect(AdaptiveBatchSize(maximum: 1000, target: .milliseconds(150), start: 1).current == 100)
        var size = AdaptiveBatchSize(maximum: 1000, target: .milliseconds(150), start: 1000)
        #expect(size.current == 1000 && size.minimum == 100)
        // 300 ms: twice the target, half the size.
        size.record(duration: .milliseconds(300), rows: 1000)
        #expect(size.current == 500)
        // Far over: at most halved per batch, never under the minimum.
        size.record(duration: .seconds(10), rows: 500)
        #expect(size.current == 250)
        for _ in 0..<10 { size.record(duration: .seconds(10), rows: size.current) }
        #expect(size.current == 100)
        // Well under two thirds of the target (100 ms): grows toward it, by at most a fifth.
        size.record(duration: .milliseconds(50), rows: 100)
        #expect(size.current == 120)
        size.record(duration: .milliseconds(90), rows: 120)
        #expect(size.current == 133)
        // Between two thirds of the target and the target: stays.
        size.record(duration: .milliseconds(120), rows: 133)
        #expect(size.current == 133)
        // A partial batch under the target does not grow it; full ones grow to the maximum.
        size.record(duration: .milliseconds(10), rows: 3)
        #expect(size.current == 133)
        for _ in 0..<20 { size.record(duration: .milliseconds(10), rows: size.current) }
        #expect(size.current == 1000)
        // Slightly over: shrinks in proportion to land at two thirds of the target.
        size.record(duration: .milliseconds(160), rows: 1000)
        #expect(size.current == 625)
    }

    @Test func tinyBatchSizesStayAtLeastOne() {
        var size = AdaptiveBatchSize(maximum: 1, target: .milliseconds(150))
        size.record(duration: .seconds(1), rows: 1)
        #expect(size.current == 1 && size.minimum == 1)
        size.record(duration: .milliseconds(1), rows: 1)
        #expect(size.current == 1)
    }
}
