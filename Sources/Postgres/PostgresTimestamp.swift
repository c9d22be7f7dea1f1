import Foundation

/// Text form of `timestamptz` in the ISO DateStyle, converted without `DateFormatter`
/// (which is slow and locale-dependent). Microsecond precision, like PostgreSQL.
enum PostgresTimestamp {
    /// `2026-11-23 20:32:10.123456+00`, always UTC.
    static func format(_ date: Date) -> String {
        let micros = (date.timeIntervalSince1970 * 1_000_000).rounded()
        let total = Int64(micros)
        var seconds = total.floorDiv(1_000_000)
        let fraction = total - seconds * 1_000_000
        let days = seconds.floorDiv(86_400)
        seconds -= days * 86_400
        let (y, m, d) = civil(fromDays: days)
        let year = y > 0 ? pad(y, 4) : pad(1 - y, 4)
        var text =
            "\(year)-\(pad(m, 2))-\(pad(d, 2)) \(pad(seconds / 3600, 2)):\(pad(seconds / 60 % 60, 2)):\(pad(seconds % 60, 2))"
        if fraction != 0 { text += "." + pad(fraction, 6) }
        text += "+00"
        if y <= 0 { text += " BC" }
        return text
    }

    /// Parses `YYYY-MM-DD HH:MM:SS[.ffffff](+|-)HH[:MM[:SS]]` and `infinity` / `-infinity`
    /// (as `Date.distantFuture` / `.distantPast`). Returns nil for anything else.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> Date? {
        if bytes.elementsEqual("infinity".utf8) { return .distantFuture }
        if bytes.elementsEqual("-infinity".utf8) { return .distantPast }
        var p = Parser(bytes: bytes)
        guard let year = p.digits(atLeast: 4), p.expect(UInt8(ascii: "-")),
            let month = p.digits(exactly: 2), p.expect(UInt8(ascii: "-")),
            let day = p.digits(exactly: 2), p.expect(UInt8(ascii: " ")) || p.expect(UInt8(ascii: "T")),
            let hour = p.digits(exactly: 2), p.expect(UInt8(ascii: ":")),
            let minute = p.digits(exactly: 2), p.expect(UInt8(ascii: ":")),
            let second = p.digits(exactly: 2)
        else { return nil }
        var micros: Int64 = 0
        if p.expect(UInt8(ascii: ".")) {
            var scale: Int64 = 100_000
            while let d = p.digit() {
                micros += Int64(d) * scale
                scale /= 10
            }
        }
        var offset: Int64 = 0
        if let signByte = p.next(), signByte == UInt8(ascii: "+") || signByte == UInt8(ascii: "-") {
            guard let oh = p.digits(exactly: 2) else { return nil }
            var off = oh * 3600
            if p.expect(UInt8(ascii: ":")), let om = p.digits(exactly: 2) {
                off += om * 60
                if p.expect(UInt8(ascii: ":")), let os = p.digits(exactly: 2) { off += os }
            }
            offset = signByte == UInt8(ascii: "-") ? -off : off
        } else {
            return nil
        }
        var y = year
        if p.remainingEquals(" BC") { y = 1 - year } else if !p.atEnd { return nil }
        let days = daysFromCivil(y, month, day)
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: Double(secs) + Double(micros) / 1_000_000)
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(_ year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = y.floorDiv(400)
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The proleptic Gregorian date of a day count since 1970-01-01.
    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = z.floorDiv(146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let s = String(value)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        var index = 0
        var atEnd: Bool { index >= bytes.count }
        mutating func next() -> UInt8? {
            guard index < bytes.count else { return nil }
            defer { index += 1 }
            return bytes[index]
        }
        mutating func expect(_ byte: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }
        mutating func digit() -> Int64? {
            guard index < bytes.count, (48...57).contains(bytes[index]) else { return nil }
            defer { index += 1 }
            return Int64(bytes[index] - 48)
        }
        mutating func digits(exactly n: Int) -> Int64? {
            var value: Int64 = 0
            for _ in 0..<n {
                guard let d = digit() else { return nil }
                value = value * 10 + d
            }
            return value
        }
        mutating func digits(atLeast n: Int) -> Int64? {
            var value: Int64 = 0
            var count = 0
            while let d = digit() {
                value = value * 10 + d
                count += 1
            }
            return count >= n ? value : nil
        }
        func remainingEquals(_ text: String) -> Bool {
            UnsafeRawBufferPointer(rebasing: bytes[index...]).elementsEqual(text.utf8)
        }
    }
}

extension Int64 {
    /// Division rounding toward negative infinity.
    fileprivate func floorDiv(_ divisor: Int64) -> Int64 {
        let q = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? q - 1 : q
    }
}
