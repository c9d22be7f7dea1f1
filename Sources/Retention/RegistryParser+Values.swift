// The readers `RegistryParser` builds definitions from: each takes a definition's fields,
// a key and the key path, and refuses a value of the wrong shape with the path named.
extension RegistryParser {
    func fail(_ path: String, _ message: String) -> Refusal {
        Refusal(path: path, message: message)
    }

    /// The named entries of a section mapping, in file order.
    func entries(_ node: ConfigurationNode?, path: String) throws(Refusal) -> [(String, ConfigurationNode)] {
        guard let node else { return [] }
        guard let mapping = node.mapping else { throw fail(path, "must be a mapping of names to definitions") }
        var out: [(String, ConfigurationNode)] = []
        for entry in mapping {
            guard let name = entry.key, Identifier.isName(name) else {
                throw fail(
                    path, "the name \"\(entry.key ?? "?")\" is not allowed; expected \(Identifier.nameAccepted)")
            }
            out.append((name, entry.value))
        }
        return out
    }

    /// The keys of a definition, refusing any not in `allowed`.
    func fields(
        _ node: ConfigurationNode, path: String, allowed: [String]
    ) throws(Refusal) -> [String: ConfigurationNode] {
        guard let mapping = node.mapping else { throw fail(path, "must be a mapping") }
        var out: [String: ConfigurationNode] = [:]
        for entry in mapping {
            let name = entry.key ?? "?"
            guard allowed.contains(name) else {
                throw fail("\(path).\(name)", "unknown key; accepted: \(allowed.sorted().joined(separator: ", "))")
            }
            out[name] = entry.value
        }
        return out
    }

    func text(_ fields: [String: ConfigurationNode], _ key: String, path: String) throws(Refusal) -> String? {
        guard let node = fields[key] else { return nil }
        guard let scalar = node.scalar else { throw fail("\(path).\(key)", "must be a single value") }
        return scalar
    }

    func required(_ fields: [String: ConfigurationNode], _ key: String, path: String) throws(Refusal) -> String {
        guard let value = try text(fields, key, path: path) else { throw fail("\(path).\(key)", "is required") }
        return value
    }

    func identifier(
        _ fields: [String: ConfigurationNode], _ key: String, path: String, default fallback: String? = nil
    )
        throws(Refusal) -> String
    {
        guard let value = try text(fields, key, path: path) ?? fallback else {
            throw fail("\(path).\(key)", "is required")
        }
        guard Identifier.isPlain(value) else {
            throw fail("\(path).\(key)", "the column name \"\(value)\" is not allowed; expected \(Identifier.accepted)")
        }
        return value
    }

    /// A column or a list of columns (`key: id`, `key: [account_id, id]`); nil when absent.
    func columns(_ fields: [String: ConfigurationNode], _ key: String, path: String) throws(Refusal) -> [String]? {
        guard let node = fields[key] else { return nil }
        let values: [String]
        if let scalar = node.scalar {
            values = [scalar]
        } else if let sequence = node.sequence {
            var list: [String] = []
            for item in sequence {
                guard let scalar = item.scalar else {
                    throw fail("\(path).\(key)", "must be a column name or a list of column names")
                }
                list.append(scalar)
            }
            values = list
        } else {
            throw fail("\(path).\(key)", "must be a column name or a list of column names")
        }
        guard !values.isEmpty else { throw fail("\(path).\(key)", "is an empty list; expected at least one column") }
        for value in values where !Identifier.isPlain(value) {
            throw fail("\(path).\(key)", "the column name \"\(value)\" is not allowed; expected \(Identifier.accepted)")
        }
        guard Set(values).count == values.count else {
            throw fail("\(path).\(key)", "lists a column twice: \(values.joined(separator: ", "))")
        }
        return values
    }

    func table(_ fields: [String: ConfigurationNode], path: String) throws(Refusal) -> TableName {
        let value = try required(fields, "table", path: path)
        guard let table = TableName.parse(value) else {
            throw fail(
                "\(path).table",
                "the table name \"\(value)\" is not allowed; expected table or schema.table, each \(Identifier.accepted)"
            )
        }
        return table
    }

    func integer(
        _ fields: [String: ConfigurationNode], _ key: String, path: String, default fallback: Int
    )
        throws(Refusal) -> Int
    {
        guard let value = try text(fields, key, path: path) else { return fallback }
        // The registry's tables store these as integer: a larger number would fail in the
        // database (SQLSTATE 22003, exit 1) instead of here, naming the key (exit 2).
        guard let number = Int(value), (1...Int(Int32.max)).contains(number) else {
            throw fail(
                "\(path).\(key)", "has the value \"\(value)\"; expected a whole number from 1 to \(Int32.max)")
        }
        return number
    }

    func duration(_ fields: [String: ConfigurationNode], _ key: String, path: String) throws(Refusal) -> Duration? {
        guard let value = try text(fields, key, path: path) else { return nil }
        guard let duration = DurationText.parse(value), duration > .zero else {
            throw fail("\(path).\(key)", "has the value \"\(value)\"; expected \(DurationText.accepted)")
        }
        return duration
    }

    func boolean(_ fields: [String: ConfigurationNode], _ key: String, path: String) throws(Refusal) -> Bool? {
        guard let value = try text(fields, key, path: path) else { return nil }
        guard let flag = BooleanText.parse(value) else {
            throw fail("\(path).\(key)", "has the value \"\(value)\"; expected true or false")
        }
        return flag
    }

    func list(_ fields: [String: ConfigurationNode], _ key: String, path: String) throws(Refusal) -> [ConfigurationNode]
    {
        guard let node = fields[key] else { return [] }
        guard let sequence = node.sequence else { throw fail("\(path).\(key)", "must be a list") }
        return sequence
    }
}
