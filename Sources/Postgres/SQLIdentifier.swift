import Foundation

/// Quoting of SQL identifiers for the few places a name cannot be a bound parameter
/// (table and column names from configuration, LISTEN channels).
public enum SQLIdentifier {
    /// `name` as a double-quoted identifier: `users` → `"users"`, `a"b` → `"a""b"`.
    /// NUL characters cannot appear in identifiers and are rejected by `isValid`.
    public static func quote(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// A possibly schema-qualified name (`schema.table`) quoted part by part.
    public static func quoteQualified(_ name: String) -> String {
        name.split(separator: ".", omittingEmptySubsequences: false).map { quote(String($0)) }
            .joined(separator: ".")
    }

    /// True when `name` is a plain identifier: a letter or underscore, then letters, digits,
    /// underscores or dollar signs, at most 63 bytes (PostgreSQL's NAMEDATALEN - 1).
    public static func isPlain(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.utf8.count <= 63 else { return false }
        guard first == "_" || (first.isASCII && first.properties.isAlphabetic) else { return false }
        return name.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "$")
        }
    }
}
