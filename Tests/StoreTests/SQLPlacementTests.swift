import Foundation
import TestSupport
import Testing

/// Store owns the SQL: a string literal outside `Sources/Store` that holds a statement
/// fails this test, naming the file and line, unless the file is allowed below with a reason.
@Suite("SQL lives in Store")
struct SQLPlacementTests {
    /// Where SQL may stay outside Store, and why. A path ending in `/` allows a directory.
    static let allowed: [(path: String, reason: String)] = [
        ("Sources/Store/", "the home of Lethe's SQL"),
        ("Sources/LetheBench/", "benchmarks and the demo build and fill their own throwaway databases"),
        ("Sources/Postgres/Connection+AdvisoryLock.swift", "the driver wraps pg_advisory_lock and its kin"),
        ("Sources/Postgres/Connection+Notifications.swift", "the driver wraps pg_notify"),
        ("Sources/Postgres/Connection+Pooler.swift", "the driver asks the server for its backend pid"),
    ]

    /// Statements, not words: upper case as the code writes SQL, so prose ("select a tier") passes.
    static let statement =
        #"\b(SELECT|INSERT INTO|UPDATE\s+\S+\s+SET|DELETE FROM|CREATE (TABLE|INDEX|FUNCTION)|ALTER TABLE|LOCK TABLE|TRUNCATE)\b"#

    static func isAllowed(_ path: String) -> Bool {
        allowed.contains { $0.path.hasSuffix("/") ? path.hasPrefix($0.path) : path == $0.path }
    }

    /// Every Swift file under `Sources/`, as paths from the repository root.
    static func sourceFiles() throws -> [String] {
        let root = Repository.root()
        let sources = root.appendingPathComponent("Sources")
        guard let walker = FileManager.default.enumerator(atPath: sources.path) else { return [] }
        return walker.compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") }.map { "Sources/" + $0 }.sorted()
    }

    /// `file:line: the line` for each statement in a literal of `source`.
    static func statements(in source: String, file: String) throws -> [String] {
        let pattern = try NSRegularExpression(pattern: statement)
        let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
        var found: [String] = []
        for literal in SwiftStringLiterals(source).literals {
            let text = literal.text as NSString
            for match in pattern.matches(in: literal.text, range: NSRange(location: 0, length: text.length)) {
                let before = text.substring(to: match.range.location)
                let line = literal.line + before.filter { $0 == "\n" }.count
                let shown = line <= lines.count ? lines[line - 1].trimmingCharacters(in: .whitespaces) : ""
                let entry = "\(file):\(line): \(shown)"
                if !found.contains(entry) { found.append(entry) }
            }
        }
        return found
    }

    @Test func noSQLOutsideStore() throws {
        let root = Repository.root()
        let files = try Self.sourceFiles()
        #expect(files.count > 50, "found only \(files.count) Swift files under \(root.path)/Sources")
        var offenders: [String] = []
        var lost: [String] = []
        for file in files where !Self.isAllowed(file) {
            let source = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
            offenders += try Self.statements(in: source, file: file)
            lost += SwiftStringLiterals(source).unterminated.map { "\(file):\($0)" }
        }
        #expect(
            offenders.isEmpty,
            """
            SQL in a string literal outside Sources/Store; move the statement into a Store type \
            (or allow the file with a reason in SQLPlacementTests.allowed):
            \(offenders.joined(separator: "\n"))
            """)
        #expect(lost.isEmpty, "the literal scanner lost its way (fix SwiftStringLiterals): \(lost)")
    }

    @Test func theScannerFindsStatementsOnlyInLiterals() throws {
        let source = #"""
            // SELECT in a comment
            /* DELETE FROM x /* nested */ UPDATE t SET a = 1 */
            let a = "plain"
            let b = "SELECT 1"
            let c = "a \(f("DELETE FROM t")) b"
            let d = """
                first line
                UPDATE lethe.tasks
                SET state = 'x'
                """
            let e = #"raw "SELECT" \(not interpolated)"#
            let f = #/INSERT INTO/#
            let g = "UPDATE \(table) SET x = 1"
            """#
        let found = try Self.statements(in: source, file: "f.swift").map { $0.prefix { $0 != " " } }
        #expect(found == ["f.swift:4:", "f.swift:5:", "f.swift:8:", "f.swift:11:", "f.swift:13:"])
        #expect(SwiftStringLiterals(source).unterminated.isEmpty)
    }
}
