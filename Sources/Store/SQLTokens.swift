/// A migration's SQL as statements of tokens: enough of PostgreSQL's lexer to find where
/// statements start (comments skipped; quoted and dollar-quoted strings kept whole, so a
/// function body's BEGIN/END is not a statement). Not a parser: `Migrator` only looks for
/// transaction control before it runs a file.
enum SQLToken: Equatable {
    /// An identifier or keyword: unquoted ones lower-cased, quoted ones as written.
    case word(String)
    /// A string literal's content: `'…'` (with `''` undone) or `$tag$…$tag$`.
    case string(String)
    /// Any other character: `(`, `)`, `,`, `.`, `;`, operators.
    case symbol(Character)

    var word: String? {
        if case .word(let word) = self { return word }
        return nil
    }
}

enum SQLTokens {
    /// The top-level statements of `sql`, split at `;`, empty ones dropped.
    static func statements(_ sql: String) -> [[SQLToken]] {
        var statements: [[SQLToken]] = []
        var current: [SQLToken] = []
        for token in tokens(sql) {
            if token == .symbol(";") {
                if !current.isEmpty { statements.append(current) }
                current = []
            } else {
                current.append(token)
            }
        }
        if !current.isEmpty { statements.append(current) }
        return statements
    }

    static func tokens(_ sql: String) -> [SQLToken] {
        let chars = Array(sql.unicodeScalars)
        var tokens: [SQLToken] = []
        var i = 0
        func at(_ k: Int) -> Unicode.Scalar? { k < chars.count ? chars[k] : nil }
        func isIdentifierStart(_ c: Unicode.Scalar) -> Bool {
            c == "_" || c.properties.isAlphabetic
        }
        func isIdentifierPart(_ c: Unicode.Scalar) -> Bool {
            isIdentifierStart(c) || c == "$" || ("0"..."9").contains(c)
        }
        /// The text between the quote at `i` and its closing one (a doubled quote stands for
        /// itself), moving `i` past it: `'…'` literals and `"…"` identifiers alike.
        func quoted(by quote: Unicode.Scalar) -> String {
            var text = String.UnicodeScalarView()
            i += 1
            while i < chars.count {
                if chars[i] == quote {
                    if at(i + 1) == quote {
                        text.append(quote)
                        i += 2
                        continue
                    }
                    i += 1
                    break
                }
                text.append(chars[i])
                i += 1
            }
            return String(text)
        }
        while i < chars.count {
            let c = chars[i]
            if c.properties.isWhitespace {
                i += 1
            } else if c == "-", at(i + 1) == "-" {
                while i < chars.count, chars[i] != "\n" { i += 1 }
            } else if c == "/", at(i + 1) == "*" {
                var depth = 0
                repeat {
                    if chars[i] == "/", at(i + 1) == "*" {
                        depth += 1
                        i += 2
                    } else if chars[i] == "*", at(i + 1) == "/" {
                        depth -= 1
                        i += 2
                    } else {
                        i += 1
                    }
                } while depth > 0 && i < chars.count
            } else if c == "'" {
                tokens.append(.string(quoted(by: c)))
            } else if c == "\"" {
                tokens.append(.word(quoted(by: c)))
            } else if c == "$", let tagEnd = dollarTagEnd(chars, from: i) {
                let tag = Array(chars[i...tagEnd])
                var j = tagEnd + 1
                var body = String.UnicodeScalarView()
                while j < chars.count {
                    if chars[j] == "$", j + tag.count <= chars.count, Array(chars[j..<(j + tag.count)]) == tag {
                        break
                    }
                    body.append(chars[j])
                    j += 1
                }
                tokens.append(.string(String(body)))
                i = min(j + tag.count, chars.count)
            } else if isIdentifierStart(c) {
                var text = String.UnicodeScalarView()
                while i < chars.count, isIdentifierPart(chars[i]) {
                    text.append(chars[i])
                    i += 1
                }
                tokens.append(.word(String(text).lowercased()))
            } else if ("0"..."9").contains(c) {
                var text = String.UnicodeScalarView()
                while i < chars.count, ("0"..."9").contains(chars[i]) || chars[i] == "." {
                    text.append(chars[i])
                    i += 1
                }
                tokens.append(.word(String(text)))
            } else {
                tokens.append(.symbol(Character(c)))
                i += 1
            }
        }
        return tokens
    }

    /// The index of the closing `$` of a dollar-quote tag starting at `start` (`$$` or `$tag$`).
    private static func dollarTagEnd(_ chars: [Unicode.Scalar], from start: Int) -> Int? {
        var k = start + 1
        while k < chars.count {
            let c = chars[k]
            if c == "$" { return k }
            guard c == "_" || c.properties.isAlphabetic || (k > start + 1 && ("0"..."9").contains(c)) else {
                return nil
            }
            k += 1
        }
        return nil
    }
}
