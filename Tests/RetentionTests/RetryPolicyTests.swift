import Retention
import Testing

@Suite struct RetryPolicyTests {
    @Test func doublesUpToTheMaximum() {
        let policy = RetryPolicy(base: .seconds(1), maximum: .seconds(60), jitter: 0)
        let delays = (1...8).map { policy.delay(afterAttempt: $0, random: 0.5) }
        #expect(delays == [1, 2, 4, 8, 16, 32, 60, 60].map { Duration.seconds($0) })
        #expect(policy.delay(afterAttempt: 10_000, random: 0.5) == .seconds(60))
    }

    @Test func jitterSpreadsWithinItsFraction() {
        let policy = RetryPolicy(base: .seconds(10), maximum: .seconds(3600), jitter: 0.2)
        #expect(policy.delay(afterAttempt: 1, random: 0) == .seconds(8))
        #expect(policy.delay(afterAttempt: 1, random: 0.5) == .seconds(10))
        #expect(policy.delay(afterAttempt: 1, random: 0.999_999) <= .seconds(12))
        for _ in 0..<1000 {
            let delay = policy.delay(afterAttempt: 3)
            #expect(delay >= .seconds(32) && delay <= .seconds(48))
        }
    }

    @Test func neverAboveTheMaximumEvenWithJitter() {
        let policy = RetryPolicy(base: .seconds(1), maximum: .seconds(5), jitter: 1)
        for attempt in 1...20 {
            #expect(policy.delay(afterAttempt: attempt, random: 0.999) <= .seconds(5))
        }
    }
}

@Suite struct DurationTextTests {
    @Test(
        "accepted forms",
        arguments: [
            ("500ms", Duration.milliseconds(500)), ("30s", .seconds(30)), ("5m", .seconds(300)),
            ("1h30m", .seconds(5400)), ("7d", .seconds(604_800)), ("2w", .seconds(1_209_600)), (" 15s ", .seconds(15)),
            ("0s", .zero),
        ])
    func accepted(_ text: String, _ expected: Duration) {
        #expect(DurationText.parse(text) == expected)
    }

    @Test(
        "refused forms",
        arguments: ["", "15", "s", "1.5h", "-3s", "6mo", "1y", "3 days", "10x", "99999999999999999999s"])
    func refused(_ text: String) {
        #expect(DurationText.parse(text) == nil)
    }

    @Test func formatRoundTrips() {
        for text in ["1m30s", "15s", "2d3h", "500ms", "1w"] {
            #expect(DurationText.format(DurationText.parse(text)!) == text)
        }
    }
}

@Suite struct TaskStateTests {
    @Test func unfinishedStates() {
        #expect(TaskState.allCases.filter { !$0.isFinished } == [.available, .running, .failed])
    }
}
