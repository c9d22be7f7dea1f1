import Postgres

/// A column of an application table: its name and its type as `format_type` gives it.
struct CompiledColumn: Sendable {
    let name: String
    let type: String

    /// The name, quoted.
    var sql: String { SQLIdentifier.quote(name) }
}

/// How Lethe names one row of a table in SQL and in `lethe.archive_manifest.row_key`: a key
/// that is unique across the whole table, never only within an account, so no statement
/// that matches rows by key can reach another tenant's row.
///
/// The parts are the table's key columns, with the account column first when the key is
/// unique only together with it. A leaf child without a key of its own (a join table) is
/// named by its parent's key and the hash of its content. One part is written as its text
/// (`42`); several as a JSON array (`[7, 42]`), decoded part by part so indexes still apply.
struct CompiledKey: Sendable {
    enum Part: Sendable {
        case column(CompiledColumn)
        /// md5 of the row's JSON: the content of a row without a key of its own.
        case contentHash
    }

    let parts: [Part]
    /// The OID of the unique index that proves the key (nil for a leaf named by its parent
    /// and content): deleting transactions check it still exists (`RegistryGuard`).
    var proof: Int64? = nil

    /// True for a row named by its content (a leaf without a key of its own): identical rows
    /// share the key, so the manifest counts them (`archive_manifest.copies`).
    var isContentNamed: Bool {
        parts.contains { if case .contentHash = $0 { true } else { false } }
    }

    /// The key columns (without a content hash).
    var columns: [CompiledColumn] {
        parts.compactMap { if case .column(let column) = $0 { column } else { nil } }
    }

    private func expression(_ part: Part, alias: String) -> String {
        switch part {
        case .column(let column): "\(alias).\(column.sql)"
        case .contentHash: "md5(row_to_json(\(alias))::text)"
        }
    }

    private func type(_ part: Part) -> String {
        switch part {
        case .column(let column): column.type
        case .contentHash: "text"
        }
    }

    /// The row's key as text (`alias` is the table's alias).
    func text(_ alias: String) -> String {
        if parts.count == 1 { return "(\(expression(parts[0], alias: alias)))::text" }
        return "jsonb_build_array(\(parts.map { expression($0, alias: alias) }.joined(separator: ", ")))::text"
    }

    /// Part `index` of a key given as text (a SQL expression), in the part's type.
    func decode(_ index: Int, of text: String) -> String {
        parts.count == 1
            ? "(\(text))::\(type(parts[0]))"
            : "(((\(text))::jsonb) ->> \(index))::\(type(parts[index]))"
    }

    /// True where the row's key equals the key in `text` (an index applies).
    func equals(_ alias: String, text: String) -> String {
        parts.indices.map { "\(expression(parts[$0], alias: alias)) = \(decode($0, of: text))" }
            .joined(separator: " AND ")
    }

    /// True where the row's key is one of `array` (a `text[]` expression of keys).
    func isIn(_ alias: String, array: String) -> String {
        if parts.count == 1 { return "\(expression(parts[0], alias: alias)) = ANY((\(array))::\(type(parts[0]))[])" }
        let row = parts.map { expression($0, alias: alias) }.joined(separator: ", ")
        let decoded = parts.indices.map { decode($0, of: "x") }.joined(separator: ", ")
        return "(\(row)) IN (SELECT \(decoded) FROM unnest(\(array)) AS x)"
    }

    /// True where rows `alias` and `other` (of the same table type) have the same key.
    func same(_ alias: String, _ other: String) -> String {
        parts.map { "\(expression($0, alias: alias)) = \(expression($0, alias: other))" }.joined(separator: " AND ")
    }

    /// The key columns of `alias`, comma-separated (for ORDER BY, IN lists, and NULL checks).
    func list(_ alias: String) -> String {
        parts.map { expression($0, alias: alias) }.joined(separator: ", ")
    }

    /// True where no key column is NULL (a NULL key names no row: such rows are never taken).
    func notNull(_ alias: String) -> String {
        columns.isEmpty ? "true" : columns.map { "\(alias).\($0.sql) IS NOT NULL" }.joined(separator: " AND ")
    }
}
