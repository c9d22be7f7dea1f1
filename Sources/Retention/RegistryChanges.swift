/// One difference between the registry in force and a new one, as a sync reports it.
/// Changes that can delete what the registry in force keeps (or stop what it runs) need
/// confirming: a type or blob store deactivated, a `min` lowered, a `max` changed, a blob
/// reference removed, a type's table, key, account, clock, predicate or tree changed.
public struct RegistryChange: Sendable, Equatable, CustomStringConvertible {
    public var text: String
    public var needsConfirmation: Bool

    public init(_ text: String, needsConfirmation: Bool) {
        self.text = text
        self.needsConfirmation = needsConfirmation
    }

    public var description: String { (needsConfirmation ? "needs --confirm: " : "") + text }
}

/// Compares two registries. Pure: no database. Intervals compare as PostgreSQL compares
/// them (a month as 30 days); a change PostgreSQL calls equal (`1mo` to `30d`) still moves
/// cutoffs, so it counts as lowering a `min` or raising a `max`.
public enum RegistryChanges {
    public static func between(_ old: Registry, _ new: Registry) -> [RegistryChange] {
        var out: [RegistryChange] = []
        func add(_ text: String, confirm: Bool) { out.append(RegistryChange(text, needsConfirmation: confirm)) }

        for type in old.entityTypes where new.entityType(named: type.name) == nil {
            add(
                "entity type \(type.name) is no longer configured: it is deactivated and no account's \(type.name) "
                    + "are deleted any more", confirm: true)
        }
        for type in new.entityTypes {
            guard let before = old.entityType(named: type.name) else {
                add("entity type \(type.name) is added (table \(type.table))", confirm: false)
                continue
            }
            out += changes(before, type)
        }
        for store in old.blobStores where new.blobStore(named: store.name) == nil {
            add("blob store \(store.name) is no longer configured: it is deactivated", confirm: true)
        }
        for store in new.blobStores {
            guard let before = old.blobStore(named: store.name) else {
                add("blob store \(store.name) is added (table \(store.table))", confirm: false)
                continue
            }
            out += changes(before, store)
        }
        let stores = Set(old.blobStores.map(\.name) + new.blobStores.map(\.name)).sorted()
        for store in stores {
            let kept = Set(new.references(to: store).map { "\($0.table).\($0.column)" })
            let had = old.references(to: store).map { "\($0.table).\($0.column)" }
            for reference in had where !kept.contains(reference) {
                add(
                    "blob reference \(reference) (store \(store)) is removed: it no longer protects the blobs it "
                        + "points to from orphan collection", confirm: true)
            }
            let before = Set(had)
            for reference in kept.sorted() where !before.contains(reference) {
                add("blob reference \(reference) (store \(store)) is added", confirm: false)
            }
        }
        return out
    }

    /// `new` is shorter than `old`, or different but equal as PostgreSQL compares them.
    public static func shortens(_ old: RetentionInterval, _ new: RetentionInterval) -> Bool {
        new != old && !(new > old)
    }

    static func changes(_ old: EntityType, _ new: EntityType) -> [RegistryChange] {
        var out: [RegistryChange] = []
        let name = "entity type \(new.name)"
        func add(_ text: String, confirm: Bool) { out.append(RegistryChange(text, needsConfirmation: confirm)) }
        func compare(_ what: String, _ before: String, _ after: String) {
            if before != after { add("\(name): \(what) changes from \(before) to \(after)", confirm: true) }
        }
        compare("table", old.table.description, new.table.description)
        compare("key", String(describing: old.key), String(describing: new.key))
        compare("account", String(describing: old.account), String(describing: new.account))
        compare("clock", old.clock, new.clock)
        compare("predicate (where)", old.predicate ?? "none", new.predicate ?? "none")
        let (was, now) = (old.bounds, new.bounds)
        if was.minimum != now.minimum {
            add(
                "\(name): min changes from \(was.minimum) to \(now.minimum)"
                    + (shortens(was.minimum, now.minimum) ? " (lowered: accounts may keep data for less time)" : ""),
                confirm: shortens(was.minimum, now.minimum))
        }
        if was.maximum != now.maximum {
            // Raised: accounts may keep data longer. Lowered: accounts above it are clamped to
            // it, so their data goes sooner. Either changes what accounts were promised.
            add(
                "\(name): max changes from \(was.maximum) to \(now.maximum)"
                    + (shortens(now.maximum, was.maximum)
                        ? " (raised: accounts may keep data for longer)"
                        : " (lowered: accounts above it are clamped to it, so their data goes sooner)"),
                confirm: true)
        }
        if was.defaultInterval != now.defaultInterval {
            add(
                "\(name): default changes from \(was.defaultInterval) to \(now.defaultInterval) (new accounts only)",
                confirm: false)
        }
        if old.deletes != new.deletes {
            add(
                new.deletes
                    ? "\(name): was keep-only (delete: false), now deletes"
                    : "\(name): becomes keep-only (delete: false)",
                confirm: new.deletes)
        }
        if old.versions != new.versions {
            let fewer =
                new.versions == nil || new.versions?.item != old.versions?.item
                || (new.versions?.keep ?? 0) < (old.versions?.keep ?? 0)
            let describe = { (v: Versions?) in v.map { "keep the newest \($0.keep) per \($0.item)" } ?? "none" }
            add(
                "\(name): versions change from \(describe(old.versions)) to \(describe(new.versions))",
                confirm: old.versions != nil && fewer)
        }
        if treeWithoutBlobs(old.children) != treeWithoutBlobs(new.children) {
            let before = old.allChildren.map(\.table.description)
            let after = new.allChildren.map(\.table.description)
            add(
                "\(name): child tables change from [\(before.joined(separator: ", "))] to "
                    + "[\(after.joined(separator: ", "))] (or their key/parent columns change)", confirm: true)
        }
        var settings: [String] = []
        if old.batchSize != new.batchSize { settings.append("batch_size \(old.batchSize) → \(new.batchSize)") }
        if old.lanes != new.lanes { settings.append("lanes \(old.lanes) → \(new.lanes)") }
        if old.checkInterval != new.checkInterval {
            let show = { (d: Duration?) in d.map { "\($0)" } ?? "retention.check_interval" }
            settings.append("check_interval \(show(old.checkInterval)) → \(show(new.checkInterval))")
        }
        if !settings.isEmpty { add("\(name): \(settings.joined(separator: ", "))", confirm: false) }
        return out
    }

    /// The child tree with blob references cleared: blob changes are compared on their own.
    static func treeWithoutBlobs(_ children: [ChildTable]) -> [ChildTable] {
        children.map { child in
            var copy = child
            copy.blobs = []
            copy.children = treeWithoutBlobs(child.children)
            return copy
        }
    }

    static func changes(_ old: BlobStore, _ new: BlobStore) -> [RegistryChange] {
        var out: [RegistryChange] = []
        let name = "blob store \(new.name)"
        func compare(_ what: String, _ before: String, _ after: String) {
            if before != after {
                out.append(
                    RegistryChange("\(name): \(what) changes from \(before) to \(after)", needsConfirmation: true))
            }
        }
        compare("table", old.table.description, new.table.description)
        compare("key", String(describing: old.key), String(describing: new.key))
        compare("account", String(describing: old.account), String(describing: new.account))
        if old.grace != new.grace {
            out.append(
                RegistryChange(
                    "\(name): grace changes from \(old.grace) to \(new.grace)"
                        + (new.grace < old.grace ? " (shortened: orphans are collected sooner)" : ""),
                    needsConfirmation: new.grace < old.grace))
        }
        var settings: [String] = []
        if old.batchSize != new.batchSize { settings.append("batch_size \(old.batchSize) → \(new.batchSize)") }
        if old.capPerRun != new.capPerRun { settings.append("cap_per_run \(old.capPerRun) → \(new.capPerRun)") }
        if old.content != new.content {
            settings.append("content \(old.content ?? "none") → \(new.content ?? "none")")
        }
        if !settings.isEmpty {
            out.append(RegistryChange("\(name): \(settings.joined(separator: ", "))", needsConfirmation: false))
        }
        return out
    }
}
