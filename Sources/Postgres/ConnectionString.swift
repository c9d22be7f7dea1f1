import CLibPQ
import Foundation

/// Checks and redacts libpq connection strings (`host=… dbname=…`) and URLs
/// (`postgresql://user:secret@host/db`).
public enum ConnectionString {
    /// Throws `.invalidConnectionString` when libpq cannot parse `conninfo`; the message
    /// quotes the string with its password masked. Wraps `PQconninfoParse`.
    public static func validate(_ conninfo: String) throws {
        var errorMessage: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(conninfo, &errorMessage) else {
            var reason = "cannot be parsed"
            if let errorMessage {
                reason = scrub(String(cString: errorMessage).trimmingTrailingNewlines(), conninfo: conninfo)
                PQfreemem(errorMessage)
            }
            throw invalid(conninfo, reason)
        }
        defer { PQconninfoFree(options) }
        // libpq checks numbers only when it connects; check them here to name the value.
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val {
                let name = String(cString: keyword)
                let text = String(cString: value)
                if name == "port", !text.isEmpty {
                    for port in text.split(separator: ",", omittingEmptySubsequences: false)
                    where !(port.isEmpty || (UInt16(port).map { $0 > 0 } ?? false)) {
                        throw invalid(conninfo, "port \"\(port)\" is not a number from 1 to 65535")
                    }
                }
                if name == "connect_timeout", !text.isEmpty, Int(text) == nil {
                    throw invalid(conninfo, "connect_timeout \"\(text)\" is not a whole number of seconds")
                }
            }
            option += 1
        }
    }

    /// The keywords and values `conninfo` sets (a URL's too), in libpq's order; throws as
    /// `validate` does. For handing a connection to another libpq program through a service
    /// file instead of its command line. Wraps `PQconninfoParse`.
    public static func keywords(_ conninfo: String) throws -> [(keyword: String, value: String)] {
        try validate(conninfo)
        guard let options = PQconninfoParse(conninfo, nil) else { return [] }
        defer { PQconninfoFree(options) }
        var result: [(keyword: String, value: String)] = []
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { result.append((String(cString: keyword), String(cString: value))) }
            option += 1
        }
        return result
    }

    private static func invalid(_ conninfo: String, _ reason: String) -> PostgresError {
        PostgresError(
            .invalidConnectionString,
            message: "invalid connection string \"\(redacted(conninfo))\": \(reason); expected a libpq "
                + "connection string (host=… dbname=…) or a URL postgresql://user@host:port/dbname")
    }

    /// `conninfo` pointing at database `name` instead: the path of a URL is replaced, and a
    /// keyword string (or an empty one, meaning the `PG*` variables) gets a final `dbname=`,
    /// which wins over an earlier one.
    public static func withDatabase(_ conninfo: String, _ name: String) -> String {
        let quoted =
            "'" + name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
        guard let schemeEnd = conninfo.range(of: "://") else {
            return conninfo.isEmpty ? "dbname=\(quoted)" : conninfo + " dbname=\(quoted)"
        }
        let rest = conninfo[schemeEnd.upperBound...]
        let query = rest.firstIndex(of: "?").map { String(rest[$0...]) } ?? ""
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let encoded = name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? name
        return String(conninfo[..<authorityEnd]) + "/" + encoded + query
    }
}

extension String {
    func trimmingTrailingNewlines() -> String {
        var s = self
        while s.last == "\n" || s.last == "\r" { s.removeLast() }
        return s
    }
}
