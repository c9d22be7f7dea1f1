import Foundation

/// Quoting of SQL identifiers for the few places a name cannot be a bound parameter
/// (table and column names from configuration, LISTEN channels).
public enum SQLIdentifier {
    /// `name` as a double-quoted identifier: `users` → `"users"`, `a"b` → `"a""b"`.
    public static func quote(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
