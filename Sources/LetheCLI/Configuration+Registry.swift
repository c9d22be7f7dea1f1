import Retention
import Yams

/// Reads `entity_types:` and `blob_stores:` into a `Registry`, naming the file, the key
/// path (`entity_types.conversations.children[0].parent`) and the value in every error.
/// Checks what needs no database; `RegistryCatalog` checks the rest against it.
struct RegistryParser {
    var source: String

    func parse(entityTypes: Node?, blobStores: Node?) throws(UsageError) -> Registry {
        var registry = Registry()
        for (name, node) in try entries(blobStores, path: "blob_stores") {
            registry.blobStores.append(try blobStore(name, node, path: "blob_stores.\(name)"))
        }
        for (name, node) in try entries(entityTypes, path: "entity_types") {
            registry.entityTypes.append(
                try entityType(name, node, path: "entity_types.\(name)", stores: registry.blobStores.map(\.name)))
        }
        return registry
    }

    private func fail(_ path: String, _ message: String) -> UsageError {
        UsageError("configuration file \(source): key \(path): \(message)")
    }

    /// The named entries of a section mapping, in file order.
    private func entries(_ node: Node?, path: String) throws(UsageError) -> [(String, Node)] {
        guard let node else { return [] }
        guard let mapping = node.mapping else { throw fail(path, "must be a mapping of names to definitions") }
        var out: [(String, Node)] = []
        for (key, value) in mapping {
            guard let name = key.string, Identifier.isName(name) else {
                throw fail(
                    path, "the name \"\(key.string ?? "?")\" is not allowed; expected \(Identifier.nameAccepted)")
            }
            out.append((name, value))
        }
        return out
    }

    /// The keys of a definition, refusing any not in `allowed`.
    private func fields(_ node: Node, path: String, allowed: [String]) throws(UsageError) -> [String: Node] {
        guard let mapping = node.mapping else { throw fail(path, "must be a mapping") }
        var out: [String: Node] = [:]
        for (key, value) in mapping {
            let name = key.string ?? "?"
            guard allowed.contains(name) else {
                throw fail("\(path).\(name)", "unknown key; accepted: \(allowed.sorted().joined(separator: ", "))")
            }
            out[name] = value
        }
        return out
    }

    private func text(_ fields: [String: Node], _ key: String, path: String) throws(UsageError) -> String? {
        guard let node = fields[key] else { return nil }
        guard let scalar = node.scalar else { throw fail("\(path).\(key)", "must be a single value") }
        return scalar.string
    }

    private func required(_ fields: [String: Node], _ key: String, path: String) throws(UsageError) -> String {
        guard let value = try text(fields, key, path: path) else { throw fail("\(path).\(key)", "is required") }
        return value
    }

    private func identifier(
        _ fields: [String: Node], _ key: String, path: String, default fallback: String? = nil
    )
        throws(UsageError) -> String
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
    private func columns(_ fields: [String: Node], _ key: String, path: String) throws(UsageError) -> [String]? {
        guard let node = fields[key] else { return nil }
        let values: [String]
        if let scalar = node.scalar {
            values = [scalar.string]
        } else if let sequence = node.sequence {
            var list: [String] = []
            for item in sequence {
                guard let scalar = item.scalar else {
                    throw fail("\(path).\(key)", "must be a column name or a list of column names")
                }
                list.append(scalar.string)
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

    private func table(_ fields: [String: Node], path: String) throws(UsageError) -> TableName {
        let value = try required(fields, "table", path: path)
        guard let table = TableName.parse(value) else {
            throw fail(
                "\(path).table",
                "the table name \"\(value)\" is not allowed; expected table or schema.table, each \(Identifier.accepted)"
            )
        }
        return table
    }

    private func integer(
        _ fields: [String: Node], _ key: String, path: String, default fallback: Int
    )
        throws(UsageError) -> Int
    {
        guard let value = try text(fields, key, path: path) else { return fallback }
        guard let number = Int(value), number >= 1 else {
            throw fail("\(path).\(key)", "has the value \"\(value)\"; expected a whole number of at least 1")
        }
        return number
    }

    private func duration(_ fields: [String: Node], _ key: String, path: String) throws(UsageError) -> Duration? {
        guard let value = try text(fields, key, path: path) else { return nil }
        guard let duration = DurationText.parse(value), duration > .zero else {
            throw fail("\(path).\(key)", "has the value \"\(value)\"; expected \(DurationText.accepted)")
        }
        return duration
    }

    private func boolean(_ fields: [String: Node], _ key: String, path: String) throws(UsageError) -> Bool? {
        guard let value = try text(fields, key, path: path) else { return nil }
        guard let flag = Configuration.parseBoolean(value) else {
            throw fail("\(path).\(key)", "has the value \"\(value)\"; expected true or false")
        }
        return flag
    }

    private func list(_ fields: [String: Node], _ key: String, path: String) throws(UsageError) -> [Node] {
        guard let node = fields[key] else { return [] }
        guard let sequence = node.sequence else { throw fail("\(path).\(key)", "must be a list") }
        return Array(sequence)
    }

    private func blobStore(_ name: String, _ node: Node, path: String) throws(UsageError) -> BlobStore {
        let f = try fields(
            node, path: path, allowed: ["table", "key", "account", "grace", "batch_size", "cap_per_run", "content"])
        var store = BlobStore(
            name: name, table: try table(f, path: path), key: try identifier(f, "key", path: path, default: "id"),
            account: try identifier(f, "account", path: path))
        store.grace = try duration(f, "grace", path: path) ?? store.grace
        store.batchSize = try integer(f, "batch_size", path: path, default: store.batchSize)
        store.capPerRun = try integer(f, "cap_per_run", path: path, default: store.capPerRun)
        if f["content"] != nil { store.content = try identifier(f, "content", path: path) }
        return store
    }

    private func entityType(
        _ name: String, _ node: Node, path: String, stores: [String]
    ) throws(UsageError)
        -> EntityType
    {
        let f = try fields(
            node, path: path,
            allowed: [
                "table", "key", "account", "clock", "where", "interval", "batch_size", "lanes", "check_interval",
                "delete",
                "blobs", "children", "versions",
            ])
        let predicate = try text(f, "where", path: path)
        if let predicate {
            do throws(Predicate.Refused) {
                try Predicate.check(predicate)
            } catch {
                throw fail(
                    "\(path).where",
                    "the predicate \"\(predicate)\" is refused: \(error); expected \(Predicate.accepted)")
            }
        }
        var type = EntityType(
            name: name, table: try table(f, path: path), key: try columns(f, "key", path: path) ?? ["id"],
            account: try identifier(f, "account", path: path), clock: try identifier(f, "clock", path: path),
            predicate: predicate, bounds: try bounds(f["interval"], path: "\(path).interval"))
        type.batchSize = try integer(f, "batch_size", path: path, default: type.batchSize)
        type.lanes = try integer(f, "lanes", path: path, default: 1)
        if type.lanes > 64 { throw fail("\(path).lanes", "has the value \(type.lanes); expected 1 to 64") }
        type.checkInterval = try duration(f, "check_interval", path: path)
        type.deletes = try boolean(f, "delete", path: path) ?? true
        type.blobs = try blobReferences(f, path: path, stores: stores)
        type.children = try children(f, path: path, stores: stores)
        if let versions = f["versions"] {
            let vpath = "\(path).versions"
            let v = try fields(versions, path: vpath, allowed: ["item", "keep"])
            type.versions = Versions(
                item: try identifier(v, "item", path: vpath),
                keep: try integer(v, "keep", path: vpath, default: 1))
        }
        return type
    }

    private func bounds(_ node: Node?, path: String) throws(UsageError) -> IntervalBounds {
        guard let node else { throw fail(path, "is required: { default: …, min: …, max: … }") }
        let f = try fields(node, path: path, allowed: ["default", "min", "max"])
        func interval(_ key: String) throws(UsageError) -> RetentionInterval {
            let value = try required(f, key, path: path)
            guard let interval = RetentionInterval.parse(value) else {
                throw fail("\(path).\(key)", "has the value \"\(value)\"; expected \(RetentionInterval.accepted)")
            }
            return interval
        }
        let (standard, minimum, maximum) = (try interval("default"), try interval("min"), try interval("max"))
        do throws(IntervalBounds.Invalid) {
            return try IntervalBounds(default: standard, minimum: minimum, maximum: maximum)
        } catch {
            throw fail(path, "\(error)")
        }
    }

    private func blobReferences(
        _ f: [String: Node], path: String, stores: [String]
    ) throws(UsageError)
        -> [BlobReference]
    {
        var out: [BlobReference] = []
        for (index, node) in try list(f, "blobs", path: path).enumerated() {
            let bpath = "\(path).blobs[\(index)]"
            let b = try fields(node, path: bpath, allowed: ["column", "store"])
            let store: String
            if let named = try text(b, "store", path: bpath) {
                guard stores.contains(named) else {
                    throw fail(
                        "\(bpath).store",
                        "no blob store named \"\(named)\"; declared under blob_stores: "
                            + (stores.isEmpty ? "none" : stores.joined(separator: ", ")))
                }
                store = named
            } else if stores.count == 1 {
                store = stores[0]
            } else {
                throw fail(
                    "\(bpath).store",
                    stores.isEmpty
                        ? "is required, and no blob store is declared under blob_stores"
                        : "is required when several blob stores are declared (\(stores.joined(separator: ", ")))")
            }
            out.append(BlobReference(column: try identifier(b, "column", path: bpath), store: store))
        }
        return out
    }

    private func children(_ f: [String: Node], path: String, stores: [String]) throws(UsageError) -> [ChildTable] {
        var out: [ChildTable] = []
        for (index, node) in try list(f, "children", path: path).enumerated() {
            let cpath = "\(path).children[\(index)]"
            let c = try fields(node, path: cpath, allowed: ["table", "key", "parent", "account", "blobs", "children"])
            guard let parent = try columns(c, "parent", path: cpath) else {
                throw fail("\(cpath).parent", "is required")
            }
            out.append(
                ChildTable(
                    table: try table(c, path: cpath), key: try columns(c, "key", path: cpath), parent: parent,
                    account: c["account"] == nil ? nil : try identifier(c, "account", path: cpath),
                    blobs: try blobReferences(c, path: cpath, stores: stores),
                    children: try children(c, path: cpath, stores: stores)))
        }
        return out
    }
}
