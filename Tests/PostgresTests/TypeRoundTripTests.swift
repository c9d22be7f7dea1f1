import Foundation
import Postgres
import TestSupport
import Testing

/// Every supported type goes to the server as a parameter and comes back as a column.
@Suite("Type round-trips against PostgreSQL")
struct TypeRoundTripTests {
    let connection: Connection

    init() throws {
        connection = try Connection.connect(try TestEnvironment.databaseURL())
    }

    func roundTrip<T: PostgresEncodable & PostgresDecodable>(_ value: T, as sqlType: String) throws -> T {
        try connection.query("SELECT $1::\(sqlType)", [value])[0].decode(T.self, at: 0)
    }

    @Test("integers, including the extremes", arguments: [Int64.min, -1, 0, 1, 42, Int64.max])
    func integers(_ value: Int64) throws {
        #expect(try roundTrip(value, as: "bigint") == value)
        #expect(try roundTrip(Int(value), as: "bigint") == Int(value))
    }

    @Test func int32AndSmallColumnsDecodeAsInt() throws {
        #expect(try roundTrip(Int32.min, as: "integer") == Int32.min)
        let row = try connection.query("SELECT 7::smallint, 8::integer, 9::bigint")[0]
        let (a, b, c) = try row.decode((Int, Int, Int).self)
        #expect(a == 7 && b == 8 && c == 9)
    }

    @Test("doubles", arguments: [0.0, -0.5, 1.0 / 3.0, 1e300, -1e-300, .infinity, -.infinity])
    func doubles(_ value: Double) throws {
        #expect(try roundTrip(value, as: "double precision") == value)
    }

    @Test func nan() throws {
        #expect(try roundTrip(Double.nan, as: "double precision").isNaN)
    }

    @Test func booleans() throws {
        #expect(try roundTrip(true, as: "boolean") == true)
        #expect(try roundTrip(false, as: "boolean") == false)
    }

    @Test(
        "strings, including unicode and characters SQL cares about",
        arguments: [
            "", "plain", "O'Brien \"quoted\" \\ back", "Grüße, 日本語, 🧹✨", "line\nbreak\ttab", "NULL",
            "{a,b}",
        ])
    func strings(_ value: String) throws {
        #expect(try roundTrip(value, as: "text") == value)
    }

    @Test func nulInTextIsRefusedNotTruncated() throws {
        let error = #expect(throws: PostgresError.self) {
            try connection.query("SELECT $1::text", ["before\u{0}after"])
        }
        #expect(error?.code == .encoding)
        #expect(error?.message.contains("parameter $1") == true)
    }

    @Test func longString() throws {
        let value = String(repeating: "long text ", count: 100_000)
        #expect(try roundTrip(value, as: "text") == value)
    }

    @Test func uuids() throws {
        let value = UUID()
        #expect(try roundTrip(value, as: "uuid") == value)
    }

    @Test(
        "timestamps keep microseconds, before 1970 too",
        arguments: [0.0, 1_763_900_000.123456, -86_400.5, 4_102_444_800.000001, 951_782_400.0 /* 2000-02-29 */])
    func timestamps(_ seconds: Double) throws {
        let value = Date(timeIntervalSince1970: seconds)
        let back = try roundTrip(value, as: "timestamptz")
        #expect(abs(back.timeIntervalSince1970 - seconds) < 0.000_001)
    }

    @Test func timestampsInOtherSessionTimeZones() throws {
        try connection.execute("SET TimeZone TO 'Asia/Kolkata'")
        defer { _ = try? connection.execute("RESET TimeZone") }
        let text = try connection.query("SELECT '2026-03-01 00:30:00+00'::timestamptz::text")[0].decode(
            String.self, at: 0)
        #expect(text == "2026-03-01 06:00:00+05:30")
        let date = try connection.query("SELECT '2026-03-01 00:30:00+00'::timestamptz")[0].decode(Date.self, at: 0)
        #expect(date == Date(timeIntervalSince1970: 1_772_325_000))
    }

    @Test func infiniteTimestamps() throws {
        let row = try connection.query("SELECT 'infinity'::timestamptz, '-infinity'::timestamptz")[0]
        let (future, past) = try row.decode((Date, Date).self)
        #expect(future == .distantFuture && past == .distantPast)
    }

    @Test func byteaCarriesEveryByte() throws {
        let value = Data((0...255).map { UInt8($0) } + [0, 0, 92, 120])
        #expect(try roundTrip(value, as: "bytea") == value)
        #expect(try roundTrip(Data(), as: "bytea") == Data())
    }

    @Test func jsonAndJsonb() throws {
        let json = PostgresJSON(#"{"name": "Zoë", "n": [1, 2, 3], "q": "\"x\""}"#)
        let back = try roundTrip(json, as: "jsonb")
        struct Doc: Decodable, Equatable {
            var name: String
            var n: [Int]
            var q: String
        }
        #expect(try back.decode(Doc.self) == Doc(name: "Zoë", n: [1, 2, 3], q: "\"x\""))
        #expect(try roundTrip(json, as: "json").text == json.text)
    }

    @Test func arraysOfIntegers() throws {
        let value: [Int64] = [3, -1, Int64.max, 0]
        #expect(try roundTrip(value, as: "bigint[]") == value)
        #expect(try roundTrip([Int64](), as: "bigint[]") == [])
        let count = try connection.query(
            "SELECT count(*) FROM generate_series(1, 10) g WHERE g = ANY($1)", [[Int64(2), 4, 11]]
        )[0].decode(Int.self, at: 0)
        #expect(count == 2)
    }

    @Test func arraysOfStrings() throws {
        let value = ["a", "with space", "comma,brace{}", "quote\"back\\slash", "NULL", "", "日本"]
        #expect(try roundTrip(value, as: "text[]") == value)
    }

    @Test func nullsBecomeOptionals() throws {
        let row = try connection.query(
            "SELECT $1::bigint, $2::text, $3::uuid, $4::timestamptz, $5::bytea, $6::boolean, $7::float8",
            [Int64?.none, String?.none, UUID?.none, Date?.none, Data?.none, Bool?.none, Double?.none])[0]
        let decoded = try row.decode((Int64?, String?, UUID?, Date?, Data?, Bool?, Double?).self)
        #expect(decoded.0 == nil && decoded.1 == nil && decoded.2 == nil && decoded.3 == nil)
        #expect(decoded.4 == nil && decoded.5 == nil && decoded.6 == nil)
        #expect(try roundTrip(Int64?.some(5), as: "bigint") == 5)
    }

    @Test func nullIntoNonOptionalIsAnErrorNamingTheColumn() throws {
        let row = try connection.query("SELECT NULL::bigint AS answer")[0]
        let error = #expect(throws: PostgresError.self) { try row.decode(Int64.self, at: 0) }
        #expect(error?.code == .decoding)
        #expect(error?.message.contains("answer") == true)
    }

    @Test func wrongTypeIsAnErrorNamingTheColumn() throws {
        let row = try connection.query("SELECT 'abc'::text AS label")[0]
        let error = #expect(throws: PostgresError.self) { try row.decode(Int64.self, named: "label") }
        #expect(error?.message.contains("label") == true)
    }

    @Test func columnsByName() throws {
        let result = try connection.query("SELECT 1 AS one, 'two' AS \"Two\"")
        #expect(result.columnNames == ["one", "Two"])
        #expect(try result[0].decode(String.self, named: "Two") == "two")
    }

    @Test func affectedRows() throws {
        try connection.execute("CREATE TEMP TABLE affected (n int)")
        #expect(try connection.execute("INSERT INTO affected SELECT generate_series(1, 5)") == 5)
        #expect(try connection.execute("DELETE FROM affected WHERE n > $1", [3]) == 2)
    }
}
