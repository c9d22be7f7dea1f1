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

    /// Throws when `text` could escape `AND (…)`. The scan reads UTF-8 bytes, as PostgreSQL's
    /// lexer does: a quote followed by a combining mark is still a quote there, though Swift
    /// sees one grapheme. (The predicate is also confined to a SQL function of its own, so
    /// even a text that got past this check could only narrow what the account and clock select.)
    public static func check(_ text: String) throws(Refused) {
        var depth = 0
        var quote: UInt8?  // ' or " while inside a literal or quoted identifier
        var previous: UInt8?
        if text.trimmingSpaces.isEmpty { throw Refused(description: "the predicate is empty") }
        for byte in text.utf8 {
            defer { previous = byte }
            // Refused even inside literals: E'\'' would end a literal where this scan does not.
            if byte == UInt8(ascii: "\\") { throw Refused(description: "it contains a backslash") }
            if byte == 0 { throw Refused(description: "it contains a NUL character") }
            if let open = quote {
                if byte == open { quote = nil }  // a doubled quote reopens at once: still balanced
                continue
            }
            switch byte {
            case UInt8(ascii: "'"), UInt8(ascii: "\""): quote = byte
            case UInt8(ascii: "("): depth += 1
            case UInt8(ascii: ")"):
                depth -= 1
                if depth < 0 { throw Refused(description: "it closes a parenthesis it did not open") }
            case UInt8(ascii: ";"): throw Refused(description: "it contains ; (one expression, not statements)")
            case UInt8(ascii: "$"):
                throw Refused(description: "it contains $ (parameters and dollar quotes are not allowed)")
            case UInt8(ascii: "-") where previous == UInt8(ascii: "-"):
                throw Refused(description: "it contains a -- comment")
            case UInt8(ascii: "*") where previous == UInt8(ascii: "/"):
                throw Refused(description: "it contains a /* comment")
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
