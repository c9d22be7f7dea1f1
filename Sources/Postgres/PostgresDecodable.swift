import Foundation

/// A Swift type that can be read from a column in PostgreSQL's text result format.
public protocol PostgresDecodable {
    /// Decodes a non-NULL value. `type` is the column's type OID; throw
    /// `PostgresDecodingFailure` when the text is not a valid value of `Self`.
    init(postgresText bytes: UnsafeRawBufferPointer, type: UInt32) throws
    /// The value SQL NULL decodes to; nil when `Self` has no such value.
    static var postgresNull: Self? { get }
}

extension PostgresDecodable {
    public static var postgresNull: Self? { nil }
}

/// Why a value could not be decoded; `Row` adds the column to make a `PostgresError`.
public struct PostgresDecodingFailure: Error {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public init(postgresText bytes: UnsafeRawBufferPointer, type: UInt32) throws {
        self = .some(try Wrapped(postgresText: bytes, type: type))
    }
    public static var postgresNull: Wrapped?? { .some(nil) }
}

extension String: PostgresDecodable {
    public init(postgresText bytes: UnsafeRawBufferPointer, type: UInt32) throws {
        self = String(decoding: bytes, as: UTF8.self)
    }
}

extension Int64: PostgresDecodable {
    public init(postgresText bytes: UnsafeRawBufferPointer, type: UInt32) throws {
        guard let value = parseInteger(bytes) else {
            throw PostgresDecodingFailure("not an integer (type OID \(type))")
        }
        self = value
    }
}

extension Int: PostgresDecodable {
    public init(postgresText bytes: UnsafeRawBufferPointer, type: UInt32) throws {
        self = Int(try Int64(postgresText: bytes, type: type))
    }
}

extension Int32: PostgresDecodable {
    public init(postgresText bytes: UnsafeRawBufferPointer, type: UInt32) throws {
        let wide = try Int64(postgresText: bytes, type: type)
        guard let narrow = Int32(exactly: wide) else { throw PostgresDecodingFailure("out of range for Int32") }
        self = narrow
    }
}

extension Double: PostgresDecodable {
    public init(postgresText bytes: UnsafeRawBufferPointer, type: UInt32) throws {
        let text = String(decoding: bytes, as: UTF8.self)
        switch text {
        case "NaN": self = .nan
        case "Infinity": self = .infinity
        case "-Infinity": self = -.infinity
        default:
            guard let value = Double(text) else { throw PostgresDecodingFailure("not a number") }
            self = value
        }
    }
}

extension Bool: PostgresDecodable {
    public init(postgresText bytes: UnsafeRawBufferPointer, type: UInt32) throws {
        guard bytes.count == 1 else { throw PostgresDecodingFailure("not a boolean") }
        switch bytes[0] {
        case UInt8(ascii: "t"): self = true
        case UInt8(ascii: "f"): self = false
        default: throw PostgresDecodingFailure("not a boolean")
        }
    }
}

extension UUID: PostgresDecodable {
    public init(postgresText bytes: UnsafeRawBufferPointer, type: UInt32) throws {
        guard let value = UUID(uuidString: String(decoding: bytes, as: UTF8.self)) else {
            throw PostgresDecodingFailure("not a UUID")
        }
        self = value
    }
}

extension Date: PostgresDecodable {
    /// Reads `timestamptz` (and `timestamp`, taken as UTC) in the ISO DateStyle.
    public init(postgresText bytes: UnsafeRawBufferPointer, type: UInt32) throws {
        if let date = PostgresTimestamp.parse(bytes) {
            self = date
            return
        }
        // `timestamp without time zone` has no offset: read it as UTC.
        let withOffset = Array(bytes) + Array("+00".utf8)
        guard let date = withOffset.withUnsafeBytes({ PostgresTimestamp.parse($0) }) else {
            throw PostgresDecodingFailure("not an ISO timestamp (is DateStyle ISO?)")
        }
        self = date
    }
}

extension Data: PostgresDecodable {
    /// Reads `bytea` in the hex output format (`\x0a0b…`), PostgreSQL's default.
    public init(postgresText bytes: UnsafeRawBufferPointer, type: UInt32) throws {
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "\\"), bytes[1] == UInt8(ascii: "x"),
            bytes.count % 2 == 0
        else {
            if type != PostgresTypeOID.bytea { self = Data(bytes); return }
            throw PostgresDecodingFailure("bytea not in hex format (set bytea_output = hex)")
        }
        // Written in place: blob slices of megabytes come through here, and a byte-wise
        // append costs more than the query.
        var out = Data(count: (bytes.count - 2) / 2)
        let valid = out.withUnsafeMutableBytes { (target: UnsafeMutableRawBufferPointer) -> Bool in
            var (i, j) = (2, 0)
            while i < bytes.count {
                guard let hi = hexValue(bytes[i]), let lo = hexValue(bytes[i + 1]) else { return false }
                target[j] = hi << 4 | lo
                (i, j) = (i + 2, j + 1)
            }
            return true
        }
        guard valid else { throw PostgresDecodingFailure("invalid hex digit in bytea") }
        self = out
    }
}

/// The text of a `json` or `jsonb` column, kept as text.
extension PostgresJSON: PostgresDecodable {
    public init(postgresText bytes: UnsafeRawBufferPointer, type: UInt32) throws {
        self.init(String(decoding: bytes, as: UTF8.self))
    }

    /// Decodes the JSON text into `T` with `JSONDecoder`.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }
}

extension Array: PostgresDecodable where Element: PostgresArrayElement & PostgresDecodable {
    /// Reads a one-dimensional array literal (`{1,2,3}`, `{"a b",c}`); NULL elements are rejected.
    public init(postgresText bytes: UnsafeRawBufferPointer, type: UInt32) throws {
        guard let items = parseArrayLiteral(bytes) else {
            throw PostgresDecodingFailure("not a one-dimensional array literal")
        }
        self = try items.map { item in
            guard let item else { throw PostgresDecodingFailure("NULL element in array") }
            return try Array<UInt8>(item.utf8).withUnsafeBytes { try Element(postgresText: $0, type: 0) }
        }
    }
}

@inline(__always) private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case 48...57: return byte - 48
    case 97...102: return byte - 87
    case 65...70: return byte - 55
    default: return nil
    }
}

private func parseInteger(_ bytes: UnsafeRawBufferPointer) -> Int64? {
    guard !bytes.isEmpty else { return nil }
    var index = 0
    var negative = false
    if bytes[0] == UInt8(ascii: "-") {
        negative = true
        index = 1
    }
    guard index < bytes.count else { return nil }
    var value: Int64 = 0
    while index < bytes.count {
        let b = bytes[index]
        guard (48...57).contains(b) else { return nil }
        let (m, o1) = value.multipliedReportingOverflow(by: 10)
        let (s, o2) =
            negative ? m.subtractingReportingOverflow(Int64(b - 48)) : m.addingReportingOverflow(Int64(b - 48))
        if o1 || o2 { return nil }
        value = s
        index += 1
    }
    return value
}

/// Splits `{a,"b c",NULL}` into its elements (nil for an unquoted NULL).
private func parseArrayLiteral(_ bytes: UnsafeRawBufferPointer) -> [String?]? {
    let text = Array(String(decoding: bytes, as: UTF8.self).unicodeScalars)
    guard text.first == "{", text.last == "}" else { return nil }
    var items: [String?] = []
    var i = 1
    let end = text.count - 1
    if end == 1 { return [] }
    while i <= end {
        var item = String.UnicodeScalarView()
        var quoted = false
        if i < end, text[i] == "\"" {
            quoted = true
            i += 1
            while i < end, text[i] != "\"" {
                if text[i] == "\\", i + 1 < end { i += 1 }
                item.append(text[i])
                i += 1
            }
            i += 1  // closing quote
        } else {
            while i < end, text[i] != "," {
                if text[i] == "{" { return nil }  // multi-dimensional
                item.append(text[i])
                i += 1
            }
        }
        let value = String(item)
        items.append(!quoted && value == "NULL" ? nil : value)
        guard i == end || text[i] == "," else { return nil }
        i += 1
    }
    return items
}
