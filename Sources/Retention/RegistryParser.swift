/// Reads the `entity_types:` and `blob_stores:` sections of a configuration into a
/// `Registry`, naming the key path (`entity_types.conversations.children[0].parent`) and the
/// value in every refusal. Checks what needs no database; Store's `RegistryCatalog` checks
/// the rest. A new entity-type option is read here, in `entityType`.
public struct RegistryParser: Sendable {
    /// A refused section: the key path and what is wrong with it and what is accepted.
    public struct Refusal: Error, Equatable, CustomStringConvertible {
        public var path: String
        public var message: String
        public var description: String { "key \(path): \(message)" }
    }

    public init() {}

    /// The registry the two sections declare (either may be absent).
    public func parse(
        entityTypes: ConfigurationNode?, blobStores: ConfigurationNode?
    ) throws(Refusal) -> Registry {
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

    private func blobStore(_ name: String, _ node: ConfigurationNode, path: String) throws(Refusal) -> BlobStore {
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
        _ name: String, _ node: ConfigurationNode, path: String, stores: [String]
    ) throws(Refusal)
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

    private func bounds(_ node: ConfigurationNode?, path: String) throws(Refusal) -> IntervalBounds {
        guard let node else { throw fail(path, "is required: { default: …, min: …, max: … }") }
        let f = try fields(node, path: path, allowed: ["default", "min", "max"])
        func interval(_ key: String) throws(Refusal) -> RetentionInterval {
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
        _ f: [String: ConfigurationNode], path: String, stores: [String]
    ) throws(Refusal)
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

    private func children(
        _ f: [String: ConfigurationNode], path: String, stores: [String]
    ) throws(Refusal) -> [ChildTable] {
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
