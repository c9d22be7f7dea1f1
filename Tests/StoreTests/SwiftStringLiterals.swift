/// The string literals of a Swift source file, found by a small lexer that knows comments
/// (nested block comments too), single- and multi-line literals, raw literals (`#"…"#`),
/// interpolations (whose code may hold literals of its own) and extended regex literals
/// (`#/…/#`). Enough to tell SQL in a literal from SQL in a comment.
struct SwiftStringLiterals {
    /// One literal: its source text between the delimiters (interpolations as written) and
    /// the line its opening delimiter is on.
    struct Literal: Equatable {
        var text: String
        var line: Int
    }

    private(set) var literals: [Literal] = []
    /// Lines of single-line literals that reached the end of their line: the lexer lost its way.
    private(set) var unterminated: [Int] = []

    private let scalars: [Unicode.Scalar]
    private var index = 0
    private var line = 1

    init(_ source: String) {
        scalars = Array(source.unicodeScalars)
        code(nested: false)
    }

    private func at(_ text: String, _ position: Int? = nil) -> Bool {
        var position = position ?? index
        for scalar in text.unicodeScalars {
            guard position < scalars.count, scalars[position] == scalar else { return false }
            position += 1
        }
        return true
    }

    private mutating func advance(_ count: Int = 1) {
        for _ in 0..<count where index < scalars.count {
            if scalars[index] == "\n" { line += 1 }
            index += 1
        }
    }

    /// Code up to the end, or (nested in an interpolation) up to and past its closing parenthesis.
    private mutating func code(nested: Bool) {
        var depth = 0
        while index < scalars.count {
            if at("//") {
                while index < scalars.count, scalars[index] != "\n" { advance() }
            } else if at("/*") {
                blockComment()
            } else if scalars[index] == "#" || scalars[index] == "\"" {
                literal()
            } else if scalars[index] == "(" {
                depth += 1
                advance()
            } else if scalars[index] == ")" {
                advance()
                if nested && depth == 0 { return }
                depth -= 1
            } else {
                advance()
            }
        }
    }

    private mutating func blockComment() {
        var depth = 0
        repeat {
            if at("/*") {
                depth += 1
                advance(2)
            } else if at("*/") {
                depth -= 1
                advance(2)
            } else {
                advance()
            }
        } while depth > 0 && index < scalars.count
    }

    /// At `"` or `#`: a string literal, an extended regex literal, or a directive such as `#if`.
    private mutating func literal() {
        var hashes = 0
        while at("#", index + hashes) { hashes += 1 }
        let pounds = String(repeating: "#", count: hashes)
        if hashes > 0 && at("/", index + hashes) {
            advance(hashes + 1)
            while index < scalars.count && !at("/" + pounds) { advance() }
            advance(hashes + 1)
            return
        }
        guard at("\"", index + hashes) else {
            advance(max(hashes, 1))
            return
        }
        let multiline = at("\"\"\"", index + hashes)
        let quotes = multiline ? "\"\"\"" : "\""
        let (close, escape) = (quotes + pounds, "\\" + pounds)
        let startLine = line
        advance(hashes + quotes.unicodeScalars.count)
        let start = index
        while index < scalars.count {
            if at(escape) {
                advance(escape.unicodeScalars.count)
                if at("(") {
                    advance()
                    code(nested: true)
                } else {
                    advance()
                }
            } else if at(close) {
                record(start, startLine)
                advance(close.unicodeScalars.count)
                return
            } else if !multiline && scalars[index] == "\n" {
                unterminated.append(startLine)
                record(start, startLine)
                return
            } else {
                advance()
            }
        }
        unterminated.append(startLine)
        record(start, startLine)
    }

    private mutating func record(_ start: Int, _ startLine: Int) {
        var text = String.UnicodeScalarView()
        text.append(contentsOf: scalars[start..<index])
        literals.append(Literal(text: String(text), line: startLine))
    }
}
