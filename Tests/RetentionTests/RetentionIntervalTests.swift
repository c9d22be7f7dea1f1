import Foundation
import Retention
import Testing

@Suite struct RetentionIntervalTests {
    @Test(
        "accepted forms",
        arguments: [
            ("1h", RetentionInterval.hours(1)), ("30d", .days(30)), ("2w", .weeks(2)), ("6mo", .months(6)),
            ("1y", .years(1)),
            ("1y6mo", .months(18)), ("1d12h", .hours(36)),
        ])
    func accepted(_ text: String, _ expected: RetentionInterval) {
        #expect(RetentionInterval.parse(text) == expected)
        #expect(RetentionInterval.parse(expected.description) == expected)
    }

    @Test(
        "refused forms",
        arguments: [
            "", "0d", "30", "d", "1.5y", "-1d", "3 months", "1m", "10x", "9999999d", "1001y", "7000y", "999999w",
        ])
    func refused(_ text: String) {
        #expect(RetentionInterval.parse(text) == nil)
    }

    @Test func calendarMonthsClampToTheMonthsEnd() throws {
        func date(_ text: String) -> Date { try! Date(text, strategy: .iso8601) }
        #expect(
            RetentionInterval.months(1).cutoff(before: date("2024-03-31T10:00:00Z")) == date("2024-02-29T10:00:00Z"))
        #expect(
            RetentionInterval.months(1).cutoff(before: date("2023-03-31T10:00:00Z")) == date("2023-02-28T10:00:00Z"))
        #expect(RetentionInterval.years(1).cutoff(before: date("2024-02-29T00:00:00Z")) == date("2023-02-28T00:00:00Z"))
        #expect(
            RetentionInterval.months(6).cutoff(before: date("2026-08-31T23:59:59Z")) == date("2026-02-28T23:59:59Z"))
        #expect(RetentionInterval.days(1).cutoff(before: date("2026-03-01T00:30:00Z")) == date("2026-02-28T00:30:00Z"))
        // Months first, then the fixed part.
        let mixed = try #require(RetentionInterval.parse("1mo1d"))
        #expect(mixed.cutoff(before: date("2024-03-31T00:00:00Z")) == date("2024-02-28T00:00:00Z"))
    }

    @Test func comparesAsPostgreSQLDoes() {
        #expect(RetentionInterval.months(1) == RetentionInterval.months(1))
        #expect(RetentionInterval.months(1).comparableSeconds == RetentionInterval.days(30).comparableSeconds)
        #expect(RetentionInterval.years(1) > .days(359))
        #expect(RetentionInterval.weeks(1) < .days(8))
    }

    @Test func boundsRejectAboveMaximumAndRaiseBelowMinimum() throws {
        let bounds = try IntervalBounds(default: .days(30), minimum: .days(1), maximum: .years(3))
        #expect(bounds.decide(.days(90)) == .accepted(.days(90)))
        #expect(bounds.decide(.hours(2)) == .raisedToMinimum(asked: .hours(2), minimum: .days(1)))
        #expect(bounds.decide(.hours(2)).effective == .days(1))
        #expect(bounds.decide(.years(4)) == .rejectedAboveMaximum(asked: .years(4), maximum: .years(3)))
        #expect(bounds.decide(.years(4)).effective == nil)
        #expect(bounds.decide(.years(3)) == .accepted(.years(3)))
        #expect(throws: IntervalBounds.Invalid.self) {
            try IntervalBounds(default: .days(30), minimum: .days(60), maximum: .days(90))
        }
        #expect(throws: IntervalBounds.Invalid.self) {
            try IntervalBounds(default: .days(1), minimum: .days(60), maximum: .days(30))
        }
    }
}
