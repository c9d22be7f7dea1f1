/// What schema `lethe` holds after migrations 1…N, read from their SQL: the tables, views,
/// columns, indexes, triggers and functions they create, minus those they drop, and each
/// function's body as written. `lethe migrate --baseline N` checks a schema that another tool
/// applied against it. Derived from the embedded SQL itself, so a new migration needs no list
/// kept by hand; `MigrationSignatureTests` checks it against the catalog of a migrated database.
public struct MigrationSignature: Sendable, Equatable {
    /// An object of schema `lethe`, by name (unquoted names lower-cased, as PostgreSQL folds them).
    public enum Object: Hashable, Sendable, Comparable, CustomStringConvertible {
        case table(String)
        case view(String)
        case column(table: String, column: String)
        case index(String)
        case trigger(table: String, name: String)
        case function(String, arguments: Int)

        public var description: String {
            switch self {
            case .table(let name): return "table lethe.\(name)"
            case .view(let name): return "view lethe.\(name)"
            case .column(let table, let column): return "column lethe.\(table).\(column)"
            case .index(let name): return "index lethe.\(name)"
            case .trigger(let table, let name): return "trigger \(name) on lethe.\(table)"
            case .function(let name, let arguments): return "function lethe.\(name) (\(arguments) arguments)"
            }
        }

        public static func < (a: Object, b: Object) -> Bool { a.description < b.description }
    }

    /// Every object, with the version of the migration that last created or altered it.
    public private(set) var objects: [Object: Int] = [:]
    /// The body (`prosrc`) of each function whose body is a string literal, as last defined.
    public private(set) var bodies: [Object: String] = [:]
    /// The index each table holds, so that dropping a table drops them.
    private var indexTables: [String: String] = [:]

    public init() {}

    /// The signature after applying `files` in order.
    public init(after files: [MigrationFile]) {
        for file in files { apply(file) }
    }

    /// Adds what `file` creates and removes what it drops.
    public mutating func apply(_ file: MigrationFile) {
        for statement in SQLTokens.statements(file.sql) {
            apply(statement, version: file.version)
        }
    }

    private mutating func apply(_ tokens: [SQLToken], version: Int) {
        var reader = StatementReader(tokens)
        if reader.take("create") {
            _ = reader.take("or", "replace")
            _ = reader.take("unique")
            _ = reader.take("constraint")
            _ = reader.take("temporary") || reader.take("temp") || reader.take("unlogged")
            _ = reader.take("materialized") || reader.take("recursive")
            if reader.take("table") {
                _ = reader.take("if", "not", "exists")
                guard let table = reader.letheName() else { return }
                // CREATE TABLE IF NOT EXISTS of a table that exists changes nothing.
                guard objects[.table(table)] == nil else { return }
                objects[.table(table)] = version
                for element in reader.parenthesisedList() {
                    guard let first = element.first?.word,
                        !["constraint", "primary", "unique", "check", "foreign", "exclude", "like"].contains(first)
                    else { continue }
                    objects[.column(table: table, column: first)] = version
                }
            } else if reader.take("view") {
                guard let view = reader.letheName() else { return }
                objects[.view(view)] = version
            } else if reader.take("function") || reader.take("procedure") {
                guard let name = reader.letheName() else { return }
                let arguments = reader.parenthesisedList().filter { $0.first?.word != "out" && !$0.isEmpty }.count
                let function = Object.function(name, arguments: arguments)
                objects[function] = version
                bodies[function] = reader.bodyAfterAs()
            } else if reader.take("index") {
                _ = reader.take("concurrently")
                _ = reader.take("if", "not", "exists")
                guard let name = reader.nextWord(), name != "on", reader.take("on") else { return }
                _ = reader.take("only")
                guard let table = reader.letheName() else { return }
                objects[.index(name)] = version
                indexTables[name] = table
            } else if reader.take("trigger") {
                guard let name = reader.nextWord(), reader.skip(to: "on"), let table = reader.letheName() else {
                    return
                }
                objects[.trigger(table: table, name: name)] = version
            }
        } else if reader.take("alter", "table") {
            _ = reader.take("if", "exists")
            _ = reader.take("only")
            guard let table = reader.letheName() else { return }
            for action in reader.commaSeparatedRest() {
                alter(table: table, action: action, version: version)
            }
        } else if reader.take("drop") {
            drop(&reader)
        }
    }

    private mutating func alter(table: String, action: [SQLToken], version: Int) {
        var action = StatementReader(action)
        if action.take("add") {
            if action.take("constraint") { return }
            _ = action.take("column")
            _ = action.take("if", "not", "exists")
            guard let column = action.nextWord(),
                !["primary", "unique", "check", "foreign", "exclude"].contains(column)
            else { return }
            objects[.column(table: table, column: column)] = version
        } else if action.take("drop") {
            if action.take("constraint") { return }
            _ = action.take("column")
            _ = action.take("if", "exists")
            if let column = action.nextWord() { objects[.column(table: table, column: column)] = nil }
        } else if action.take("rename") {
            if action.take("to"), let renamed = action.nextWord() {
                renameTable(table, to: renamed)
            } else {
                _ = action.take("column")
                guard let old = action.nextWord(), action.take("to"), let new = action.nextWord() else { return }
                if objects.removeValue(forKey: .column(table: table, column: old)) != nil {
                    objects[.column(table: table, column: new)] = version
                }
            }
        }
    }

    private mutating func drop(_ reader: inout StatementReader) {
        _ = reader.take("materialized")
        let kinds = ["table", "view", "function", "procedure", "index", "trigger"]
        guard let kind = kinds.first(where: { reader.take($0) }) else { return }
        _ = reader.take("concurrently")
        _ = reader.take("if", "exists")
        switch kind {
        case "table":
            while let table = reader.letheName() {
                dropTable(table)
                guard reader.take(symbol: ",") else { break }
            }
        case "view":
            while let view = reader.letheName() {
                objects[.view(view)] = nil
                guard reader.take(symbol: ",") else { break }
            }
        case "index":
            while let name = reader.letheName() {
                objects[.index(name)] = nil
                guard reader.take(symbol: ",") else { break }
            }
        case "trigger":
            guard let name = reader.nextWord(), reader.take("on"), let table = reader.letheName() else { return }
            objects[.trigger(table: table, name: name)] = nil
        default:  // function, procedure
            while let name = reader.letheName() {
                let arguments = reader.parenthesisedList().filter { $0.first?.word != "out" && !$0.isEmpty }.count
                objects[.function(name, arguments: arguments)] = nil
                bodies[.function(name, arguments: arguments)] = nil
                guard reader.take(symbol: ",") else { break }
            }
        }
    }

    private mutating func dropTable(_ table: String) {
        for object in objects.keys {
            switch object {
            case .table(table), .column(table, _), .trigger(table, _): objects[object] = nil
            case .index(let name) where indexTables[name] == table: objects[object] = nil
            default: break
            }
        }
    }

    private mutating func renameTable(_ table: String, to renamed: String) {
        for (object, version) in objects {
            switch object {
            case .table(table):
                objects[object] = nil
                objects[.table(renamed)] = version
            case .column(table, let column):
                objects[object] = nil
                objects[.column(table: renamed, column: column)] = version
            case .trigger(table, let name):
                objects[object] = nil
                objects[.trigger(table: renamed, name: name)] = version
            default: break
            }
        }
        for (index, owner) in indexTables where owner == table { indexTables[index] = renamed }
    }
}

/// Reads one statement's tokens from the front.
struct StatementReader {
    private let tokens: [SQLToken]
    private var position = 0

    init(_ tokens: [SQLToken]) { self.tokens = tokens }

    /// Consumes `words` if the next tokens are exactly they.
    mutating func take(_ words: String...) -> Bool {
        guard position + words.count <= tokens.count else { return false }
        for (offset, word) in words.enumerated() where tokens[position + offset] != .word(word) { return false }
        position += words.count
        return true
    }

    mutating func take(symbol: Character) -> Bool {
        guard position < tokens.count, tokens[position] == .symbol(symbol) else { return false }
        position += 1
        return true
    }

    mutating func nextWord() -> String? {
        guard position < tokens.count, let word = tokens[position].word else { return nil }
        position += 1
        return word
    }

    /// Moves past the next `word` at parenthesis depth 0; false if there is none.
    mutating func skip(to word: String) -> Bool {
        var depth = 0
        while position < tokens.count {
            let token = tokens[position]
            position += 1
            if token == .symbol("(") { depth += 1 }
            if token == .symbol(")") { depth -= 1 }
            if depth == 0, token == .word(word) { return true }
        }
        return false
    }

    /// `lethe.name` → "name"; nil (consuming it) for a name in any other schema or unqualified.
    mutating func letheName() -> String? {
        guard let first = nextWord() else { return nil }
        guard take(symbol: ".") else { return nil }
        guard let second = nextWord() else { return nil }
        return first == "lethe" ? second : nil
    }

    /// The comma-separated elements of the parenthesised list that follows, if one does.
    mutating func parenthesisedList() -> [[SQLToken]] {
        guard take(symbol: "(") else { return [] }
        var elements: [[SQLToken]] = [[]]
        var depth = 1
        while position < tokens.count {
            let token = tokens[position]
            position += 1
            if token == .symbol("(") { depth += 1 }
            if token == .symbol(")") {
                depth -= 1
                if depth == 0 { break }
            }
            if depth == 1, token == .symbol(",") {
                elements.append([])
            } else {
                elements[elements.count - 1].append(token)
            }
        }
        return elements == [[]] ? [] : elements
    }

    /// The rest, split at commas outside parentheses.
    mutating func commaSeparatedRest() -> [[SQLToken]] {
        var parts: [[SQLToken]] = [[]]
        var depth = 0
        while position < tokens.count {
            let token = tokens[position]
            position += 1
            if token == .symbol("(") { depth += 1 }
            if token == .symbol(")") { depth -= 1 }
            if depth == 0, token == .symbol(",") {
                parts.append([])
            } else {
                parts[parts.count - 1].append(token)
            }
        }
        return parts
    }

    /// A function's body: the string literal after `AS` at depth 0 (nil for a SQL-standard body).
    mutating func bodyAfterAs() -> String? {
        guard skip(to: "as"), position < tokens.count, case .string(let body) = tokens[position] else { return nil }
        return body
    }
}
