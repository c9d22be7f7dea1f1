/// Checks an eligibility predicate from configuration before it is pasted into SQL as
/// `AND (predicate)`. The predicate is the operator's SQL, but it must stay inside its
/// parentheses: it may not close them early, end the statement, comment out the rest,
/// or reach the statement's bound parameters. The database then checks the rest (EXPLAIN).
public enum Predicate {
    /// Why a predicate is refused.
    public struct Refused: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    public static let accepted =
        "a SQL boolean expression over the row (aliased r) with balanced parentheses and no ;, comments (-- or /* */), "
        + "$ parameters or backslashes"

    /// Throws when `text` could escape `AND (…)`.
    public static func check(_ text: String) throws(Refused) {
        var depth = 0
        var quote: Character?  // ' or " while inside a literal or quoted identifier
        var previous: Character?
        if text.trimmingSpaces.isEmpty { throw Refused(description: "the predicate is empty") }
        for character in text {
            defer { previous = character }
            // Refused even inside literals: E'\'' would end a literal where this scan does not.
            if character == "\\" { throw Refused(description: "it contains a backslash") }
            if character == "\u{0}" { throw Refused(description: "it contains a NUL character") }
            if let open = quote {
                if character == open { quote = nil }  // a doubled quote reopens at once: still balanced
                continue
            }
            switch character {
            case "'", "\"": quote = character
            case "(": depth += 1
            case ")":
                depth -= 1
                if depth < 0 { throw Refused(description: "it closes a parenthesis it did not open") }
            case ";": throw Refused(description: "it contains ; (one expression, not statements)")
            case "$": throw Refused(description: "it contains $ (parameters and dollar quotes are not allowed)")
            case "-" where previous == "-": throw Refused(description: "it contains a -- comment")
            case "*" where previous == "/": throw Refused(description: "it contains a /* comment")
            default: break
            }
        }
        if quote != nil { throw Refused(description: "it leaves a quote open") }
        if depth != 0 { throw Refused(description: "its parentheses do not balance") }
    }
}

extension String {
    fileprivate var trimmingSpaces: Substring {
        var s = Substring(self)
        while s.first?.isWhitespace == true { s = s.dropFirst() }
        while s.last?.isWhitespace == true { s = s.dropLast() }
        return s
    }
}
