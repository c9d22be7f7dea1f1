import Foundation

/// One bound parameter as libpq receives it: text or binary bytes, and a type OID
/// (0 lets the server infer the type from the statement).
public struct PostgresParameter: Sendable {
    enum Value: Sendable {
        case null
        case text(String)
        case binary([UInt8])
    }
    let value: Value
    let typeOID: UInt32

    public static let null = PostgresParameter(value: .null, typeOID: 0)
    public static func text(_ text: String, type: UInt32 = 0) -> PostgresParameter {
        PostgresParameter(value: .text(text), typeOID: type)
    }
    public static func binary(_ bytes: [UInt8], type: UInt32) -> PostgresParameter {
        PostgresParameter(value: .binary(bytes), typeOID: type)
    }
}

/// A Swift value that can be bound to a `$n` placeholder.
public protocol PostgresEncodable: Sendable {
    var postgresParameter: PostgresParameter { get }
}

/// Well-known type OIDs (from `pg_type`).
public enum PostgresTypeOID {
    public static let bool: UInt32 = 16
    public static let bytea: UInt32 = 17
    public static let int8: UInt32 = 20
    public static let int2: UInt32 = 21
    public static let int4: UInt32 = 23
    public static let text: UInt32 = 25
    public static let json: UInt32 = 114
    public static let float4: UInt32 = 700
    public static let float8: UInt32 = 701
    public static let textArray: UInt32 = 1009
    public static let int8Array: UInt32 = 1016
    public static let timestamptz: UInt32 = 1184
    public static let numeric: UInt32 = 1700
    public static let uuid: UInt32 = 2950
    public static let uuidArray: UInt32 = 2951
    public static let jsonb: UInt32 = 3802
}

extension Int: PostgresEncodable {
    public var postgresParameter: PostgresParameter { .text(String(self), type: PostgresTypeOID.int8) }
}
extension Int64: PostgresEncodable {
    public var postgresParameter: PostgresParameter { .text(String(self), type: PostgresTypeOID.int8) }
}
extension Int32: PostgresEncodable {
    public var postgresParameter: PostgresParameter { .text(String(self), type: PostgresTypeOID.int4) }
}
extension Double: PostgresEncodable {
    public var postgresParameter: PostgresParameter {
        let text: String
        if isNaN {
            text = "NaN"
        } else if isInfinite {
            text = self < 0 ? "-Infinity" : "Infinity"
        } else {
            text = String(self)
        }
        return .text(text, type: PostgresTypeOID.float8)
    }
}
extension Bool: PostgresEncodable {
    public var postgresParameter: PostgresParameter { .text(self ? "t" : "f", type: PostgresTypeOID.bool) }
}
extension String: PostgresEncodable {
    /// Sent untyped, so the server infers `text`, `varchar`, `name` or an enum from context.
    public var postgresParameter: PostgresParameter { .text(self) }
}
extension Substring: PostgresEncodable {
    public var postgresParameter: PostgresParameter { .text(String(self)) }
}
extension UUID: PostgresEncodable {
    public var postgresParameter: PostgresParameter {
        .text(uuidString.lowercased(), type: PostgresTypeOID.uuid)
    }
}
extension Date: PostgresEncodable {
    public var postgresParameter: PostgresParameter {
        .text(PostgresTimestamp.format(self), type: PostgresTypeOID.timestamptz)
    }
}
extension Data: PostgresEncodable {
    public var postgresParameter: PostgresParameter { .binary([UInt8](self), type: PostgresTypeOID.bytea) }
}
extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public var postgresParameter: PostgresParameter {
        switch self {
        case .none: return .null
        case .some(let value): return value.postgresParameter
        }
    }
}

/// JSON text bound untyped, so it fits `json` and `jsonb` columns alike.
public struct PostgresJSON: PostgresEncodable, Hashable {
    public var text: String
    public init(_ text: String) { self.text = text }
    /// Encodes `value` with `JSONEncoder` (sorted keys, so equal values give equal text).
    public init<T: Encodable>(encoding value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        self.text = String(decoding: try encoder.encode(value), as: UTF8.self)
    }
    public var postgresParameter: PostgresParameter { .text(text) }
}

extension Array: PostgresEncodable where Element: PostgresArrayElement {
    public var postgresParameter: PostgresParameter {
        let body = map { $0.postgresArrayLiteral }.joined(separator: ",")
        return .text("{" + body + "}", type: Element.postgresArrayOID)
    }
}

/// A type whose arrays bind as PostgreSQL arrays (`bigint[]`, `text[]`, `uuid[]`).
public protocol PostgresArrayElement: Sendable {
    static var postgresArrayOID: UInt32 { get }
    var postgresArrayLiteral: String { get }
}
extension Int64: PostgresArrayElement {
    public static var postgresArrayOID: UInt32 { PostgresTypeOID.int8Array }
    public var postgresArrayLiteral: String { String(self) }
}
extension Int: PostgresArrayElement {
    public static var postgresArrayOID: UInt32 { PostgresTypeOID.int8Array }
    public var postgresArrayLiteral: String { String(self) }
}
extension String: PostgresArrayElement {
    public static var postgresArrayOID: UInt32 { PostgresTypeOID.textArray }
    /// Always quoted, with `"` and `\` escaped, so `NULL`, commas and braces stay text.
    public var postgresArrayLiteral: String {
        var out = "\""
        for ch in unicodeScalars {
            if ch == "\"" || ch == "\\" { out.unicodeScalars.append("\\") }
            out.unicodeScalars.append(ch)
        }
        return out + "\""
    }
}
extension UUID: PostgresArrayElement {
    public static var postgresArrayOID: UInt32 { PostgresTypeOID.uuidArray }
    public var postgresArrayLiteral: String { uuidString.lowercased() }
}

extension Optional: PostgresArrayElement where Wrapped: PostgresArrayElement {
    public static var postgresArrayOID: UInt32 { Wrapped.postgresArrayOID }
    /// `NULL` (unquoted) for nil.
    public var postgresArrayLiteral: String { map(\.postgresArrayLiteral) ?? "NULL" }
}

extension Date: PostgresArrayElement {
    public static var postgresArrayOID: UInt32 { 1185 }  // timestamptz[]
    public var postgresArrayLiteral: String { "\"" + PostgresTimestamp.format(self) + "\"" }
}
