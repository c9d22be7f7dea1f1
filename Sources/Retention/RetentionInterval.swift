import Foundation

/// How long an account keeps an entity type: hours, days, weeks, or calendar months and
/// years (`1h`, `30d`, `2w`, `6mo`, `1y`, or a sum such as `1y6mo`).
///
/// Cutoffs are calendar arithmetic in UTC, as PostgreSQL's `timestamp - interval` does
/// it: a month back from March 31 is the last day of February. Intervals compare as
/// PostgreSQL compares them (a month as 30 days, a year as 12 months); bounds use that.
public struct RetentionInterval: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Calendar months (a year is 12).
    public var months: Int
    /// Whole seconds on top of the months (hours, days and weeks are fixed lengths in UTC).
    public var seconds: Int64

    public init(months: Int = 0, seconds: Int64 = 0) {
        precondition(months >= 0 && seconds >= 0, "a retention interval is not negative")
        self.months = months
        self.seconds = seconds
    }

    public static func hours(_ n: Int) -> RetentionInterval { RetentionInterval(seconds: Int64(n) * 3600) }
    public static func days(_ n: Int) -> RetentionInterval { RetentionInterval(seconds: Int64(n) * 86_400) }
    public static func weeks(_ n: Int) -> RetentionInterval { RetentionInterval(seconds: Int64(n) * 604_800) }
    public static func months(_ n: Int) -> RetentionInterval { RetentionInterval(months: n) }
    public static func years(_ n: Int) -> RetentionInterval { RetentionInterval(months: n * 12) }

    /// What `parse` accepts, for error messages.
    public static let accepted =
        "a whole number with a unit: h (hours), d (days), w (weeks), mo (calendar months) or y (years), "
        + "or a sum of them (e.g. 12h, 30d, 2w, 6mo, 1y, 1y6mo), at most 1000y"

    /// Parses `text`, or returns nil. Zero is refused: nothing is kept for no time.
    public static func parse(_ text: String) -> RetentionInterval? {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        guard !rest.isEmpty else { return nil }
        var interval = RetentionInterval()
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, digits.count <= 6, let value = Int(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            if rest.hasPrefix("mo") {
                interval.months += value
                rest = rest.dropFirst(2)
            } else if let unit = rest.first, let size: Int64 = ["h": 3600, "d": 86_400, "w": 604_800][unit] {
                interval.seconds += Int64(value) * size
                rest = rest.dropFirst()
            } else if rest.first == "y" {
                interval.months += value * 12
                rest = rest.dropFirst()
            } else {
                return nil
            }
        }
        // Longer than 1000 years is refused: PostgreSQL's timestamps end in 294276 AD, and a
        // cutoff that overflows would fail every status query of the type.
        guard interval.comparableSeconds <= Self.longest else { return nil }
        return interval.months == 0 && interval.seconds == 0 ? nil : interval
    }

    /// The longest interval `parse` accepts, in comparable seconds: 1000 years.
    static let longest: Int64 = 1000 * 12 * 30 * 86_400

    /// The shortest text `parse` reads back: `1y6mo`, `30d`, `36h`.
    public var description: String {
        var out = ""
        if months >= 12 { out += "\(months / 12)y" }
        if months % 12 > 0 { out += "\(months % 12)mo" }
        var rest = seconds
        for (unit, size) in [("w", Int64(604_800)), ("d", 86_400), ("h", 3600)] where rest >= size {
            out += "\(rest / size)\(unit)"
            rest %= size
        }
        if rest > 0 { out += "\(rest)s" }
        return out.isEmpty ? "0h" : out
    }

    /// The interval's length as PostgreSQL compares intervals: a month is 30 days.
    public var comparableSeconds: Int64 { Int64(months) * 30 * 86_400 + seconds }

    /// `now` minus this interval, in UTC calendar arithmetic: first the months (the day of
    /// the month clamped to the target month's length), then the seconds.
    public func cutoff(before now: Date) -> Date {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        var date = now
        if months > 0 {
            // Month arithmetic on the fields, day clamped to the target month's length
            // (Mar 31 − 1 month = Feb 28/29), as PostgreSQL does. (Foundation's
            // date(byAdding: .month) clamps differently across several leap years.)
            var fields = calendar.dateComponents(
                [.year, .month, .day, .hour, .minute, .second, .nanosecond], from: now)
            let total = fields.year! * 12 + (fields.month! - 1) - months
            fields.year = total.floorDiv(12)
            fields.month = total - fields.year! * 12 + 1
            let firstOfMonth = calendar.date(from: DateComponents(year: fields.year, month: fields.month, day: 1))!
            let length = calendar.range(of: .day, in: .month, for: firstOfMonth)!.count
            fields.day = min(fields.day!, length)
            date = calendar.date(from: fields)!
        }
        return date.addingTimeInterval(-Double(seconds))
    }

    /// The interval as PostgreSQL interval text (`6 mons 30 days 3600 secs`), for binding.
    /// Whole days are written as days so PostgreSQL shows `30 days`, not `720:00:00`; in
    /// UTC a day is always 24 hours, so the cutoff is the same.
    public var postgresText: String { "\(months) mons \(seconds / 86_400) days \(seconds % 86_400) secs" }
}

extension RetentionInterval: Comparable {
    public static func < (lhs: RetentionInterval, rhs: RetentionInterval) -> Bool {
        lhs.comparableSeconds < rhs.comparableSeconds
    }
}

extension Int {
    /// Division rounding toward negative infinity.
    fileprivate func floorDiv(_ divisor: Int) -> Int {
        let quotient = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }
}
