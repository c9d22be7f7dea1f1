/// The strength rule for an account's archive key: at least 8 characters with upper- and
/// lower-case letters and digits or symbols. Messages state the rule, never the key.
public enum ArchiveKeyRule {
    /// The rule as operators read it in errors and help texts.
    public static let statement =
        "an archive key needs at least 8 characters, with upper-case and lower-case letters and digits or symbols"

    /// Nil when `key` passes; otherwise what is missing (without the key).
    public static func violation(of key: String) -> String? {
        var missing: [String] = []
        if key.count < 8 { missing.append("it has \(key.count) characters") }
        if !key.contains(where: \.isUppercase) { missing.append("no upper-case letter") }
        if !key.contains(where: \.isLowercase) { missing.append("no lower-case letter") }
        if !key.contains(where: { !$0.isLetter && !$0.isWhitespace }) { missing.append("no digit or symbol") }
        if key.contains(where: { $0.isNewline || $0 == "\0" }) { missing.append("it contains a line break or NUL") }
        guard !missing.isEmpty else { return nil }
        return "weak archive key (\(missing.joined(separator: ", "))): \(statement)"
    }
}
