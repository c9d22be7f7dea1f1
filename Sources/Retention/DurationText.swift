/// Human durations in configuration: `500ms`, `30s`, `5m`, `1h`, `7d`, `2w`, or a
/// combination such as `1h30m`. Calendar months and years are retention intervals, not
/// clock durations, and are refused here with a pointer to what is accepted.
public enum DurationText {
    /// Parses `text`, or returns nil.
    public static func parse(_ text: String) -> Duration? {
        let units: [(String, Int64)] = [
            ("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000), ("w", 604_800_000),
        ]
        var rest = Substring(text.trimmingCharacters())
        guard !rest.isEmpty else { return nil }
        var total: Int64 = 0
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, let value = Int64(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            // Longest unit first, so "ms" is not read as "m" followed by "s".
            guard
                let (unit, millis) = units.sorted(by: { $0.0.count > $1.0.count }).first(where: { rest.hasPrefix($0.0) }
                )
            else { return nil }
            rest = rest.dropFirst(unit.count)
            let (product, overflow) = value.multipliedReportingOverflow(by: millis)
            guard !overflow else { return nil }
            total += product
        }
        return .milliseconds(total)
    }

    /// What `parse` accepts, for error messages.
    public static let accepted = "a number with a unit: ms, s, m, h, d or w (e.g. 500ms, 30s, 5m, 1h30m, 7d)"

    /// `duration` in the shortest exact form `parse` reads back (`90s` → `1m30s`).
    public static func format(_ duration: Duration) -> String {
        var millis = duration.milliseconds
        if millis == 0 { return "0s" }
        var out = ""
        for (unit, size) in [
            ("w", Int64(604_800_000)), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1),
        ]
        where millis >= size {
            out += "\(millis / size)\(unit)"
            millis %= size
        }
        return out
    }
}

extension String {
    fileprivate func trimmingCharacters() -> String {
        var s = Substring(self)
        while s.first?.isWhitespace == true { s = s.dropFirst() }
        while s.last?.isWhitespace == true { s = s.dropLast() }
        return String(s)
    }
}
