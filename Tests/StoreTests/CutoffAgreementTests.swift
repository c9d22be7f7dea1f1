import Foundation
import Postgres
import Retention
import TestSupport
import Testing

/// Retention cutoffs computed in Swift must equal PostgreSQL's own calendar arithmetic,
/// since deletes compare clocks with cutoffs on the server.
@Suite("Cutoffs agree with PostgreSQL")
struct CutoffAgreementTests {
    @Test func randomDatesAndIntervalsAcrossMonthEndsAndLeapDays() throws {
        let connection = try Connection.connect(try TestEnvironment.databaseURL())
        var generator = SeededGenerator(seed: 0x1e7e)
        var samples: [(Date, RetentionInterval)] = []
        // Month ends and leap days on purpose, plus random instants over 8 years.
        for text in ["2024-02-29T12:00:00Z", "2024-03-31T23:59:59Z", "2023-12-31T00:00:00Z", "2025-05-31T06:30:00Z"] {
            let date = try Date(text, strategy: .iso8601)
            for interval in [RetentionInterval.months(1), .months(3), .years(1), .days(1), .hours(1), .months(13)] {
                samples.append((date, interval))
            }
        }
        for _ in 0..<400 {
            let seconds = Double(Int64.random(in: 1_577_836_800...1_830_297_600, using: &generator))
            let interval = RetentionInterval(
                months: Int.random(in: 0...40, using: &generator),
                seconds: Int64.random(in: 0...5, using: &generator) * 86_400 + Int64.random(
                    in: 0...23, using: &generator) * 3600)
            if interval.months == 0 && interval.seconds == 0 { continue }
            samples.append((Date(timeIntervalSince1970: seconds), interval))
        }
        for (now, interval) in samples {
            let server = try connection.query(
                "SELECT (($1::timestamptz AT TIME ZONE 'UTC') - $2::interval) AT TIME ZONE 'UTC'",
                [now, interval.postgresText])[0].decode(Date.self, at: 0)
            #expect(server == interval.cutoff(before: now), "\(interval) before \(now)")
        }
    }
}
