import Retention

/// Reads PostgreSQL's default interval output (`1 year 2 mons 3 days 04:00:00`) back
/// into a `RetentionInterval` for display.
public enum PostgresInterval {
    /// The interval, or nil for text in another style or with a negative part.
    public static func parse(_ text: String) -> RetentionInterval? {
        var months = 0
        var seconds: Int64 = 0
        let parts = text.split(separator: " ")
        var index = 0
        while index < parts.count {
            let part = parts[index]
            if part.contains(":") {
                let hms = part.split(separator: ":").compactMap { Double($0) }
                guard hms.count == 3 else { return nil }
                seconds += Int64(hms[0] * 3600 + hms[1] * 60 + hms[2])
                index += 1
                continue
            }
            guard let value = Int(part), index + 1 < parts.count else { return nil }
            let unit = parts[index + 1]
            if unit.hasPrefix("year") {
                months += value * 12
            } else if unit.hasPrefix("mon") {
                months += value
            } else if unit.hasPrefix("day") {
                seconds += Int64(value) * 86_400
            } else {
                return nil
            }
            index += 2
        }
        guard months >= 0, seconds >= 0 else { return nil }
        return RetentionInterval(months: months, seconds: seconds)
    }
}
