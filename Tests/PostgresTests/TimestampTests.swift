import Foundation
import Testing

@testable import Postgres

/// The timestamp text codec, without a server.
@Suite struct TimestampTests {
    @Test func formatsUTCWithMicroseconds() {
        #expect(PostgresTimestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01 00:00:00+00")
        #expect(
            PostgresTimestamp.format(Date(timeIntervalSince1970: 951_782_400.25)) == "2000-02-29 00:00:00.250000+00")
        #expect(PostgresTimestamp.format(Date(timeIntervalSince1970: -1)) == "1969-12-31 23:59:59+00")
    }

    @Test func parsesOffsetsAndFractions() {
        func parse(_ text: String) -> Date? { Array(text.utf8).withUnsafeBytes { PostgresTimestamp.parse($0) } }
        #expect(parse("2026-03-01 06:00:00+05:30") == Date(timeIntervalSince1970: 1_772_325_000))
        #expect(parse("2026-02-28 20:30:00-04") == Date(timeIntervalSince1970: 1_772_325_000))
        #expect(parse("1970-01-01 00:00:00.5+00") == Date(timeIntervalSince1970: 0.5))
        #expect(parse("2026-13-01") == nil)
        #expect(parse("yesterday") == nil)
    }

    @Test func civilCalendarRoundTripsAcrossLeapYears() {
        for days in stride(from: Int64(-800_000), through: 800_000, by: 997) {
            let (y, m, d) = PostgresTimestamp.civil(fromDays: days)
            #expect(PostgresTimestamp.daysFromCivil(y, m, d) == days)
        }
        #expect(PostgresTimestamp.civil(fromDays: 11_016) == (2000, 2, 29))
    }
}
