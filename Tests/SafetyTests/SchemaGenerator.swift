import TestSupport

/// Draws a random, valid operator schema: key types, key shapes, quoted mixed-case names,
/// clock types, nested children, join-table leaves, blobs, guards, versions, keep-only types.
struct SchemaGenerator {
    var options: SafetyOptions
    var random: SeededGenerator

    private static let rootNames = ["Tickets", "call_logs", "Sessions$", "Orders", "notes", "Threads", "Cases"]
    private static let childNames = ["Messages", "parts", "Replies", "line_Items", "Steps", "Comments", "attachments"]
    private static let joinNames = ["memberships", "Watchers", "tags_map"]
    private static let minimums = [Span(yaml: "1d", sql: "1 day"), Span(yaml: "7d", sql: "7 days")]
    private static let defaults = [
        Span(yaml: "30d", sql: "30 days"), Span(yaml: "90d", sql: "90 days"), Span(yaml: "6mo", sql: "6 mons"),
    ]
    private static let maximums = [Span(yaml: "1y", sql: "1 year"), Span(yaml: "2y", sql: "2 years")]

    init(options: SafetyOptions, seed: UInt64) {
        self.options = options
        self.random = SeededGenerator(seed: seed)
    }

    mutating func pick<T>(_ values: [T]) -> T { values.randomElement(using: &random)! }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &random) < p }

    /// A schema of 2 to 4 entity types; the first has the usual multi-tenant key (account, id)
    /// unless `options.singleKeysOnly`.
    mutating func schema(accountType: String? = nil) -> SchemaModel {
        var roots = Self.rootNames.shuffled(using: &random)
        var children = Self.childNames.shuffled(using: &random)
        var joins = Self.joinNames.shuffled(using: &random)
        let count = Int.random(in: 2...4, using: &random)
        var types: [EntityModel] = []
        for index in 0..<count {
            types.append(entity(index, root: roots.removeFirst(), children: &children, joins: &joins))
        }
        return SchemaModel(accountType: accountType ?? pick(["bigint", "bigint", "text"]), types: types)
    }

    private mutating func entity(
        _ index: Int, root name: String, children: inout [String], joins: inout [String]
    ) -> EntityModel {
        let shape =
            options.singleKeysOnly ? KeyShape.single : index == 0 ? KeyShape.withAccount : pick(KeyShape.allCases)
        let schema = pick(["app", "Ops"])
        var root = keyed(schema: schema, name: name, shape: shape, account: pick(["account_id", "TenantId", "acct"]))
        if chance(0.6) { root.blobColumn = "blob_id" }
        var tables = [root]
        for _ in 0..<Int.random(in: 0...2, using: &random) where !children.isEmpty {
            let parent = tables[0]
            var child = keyed(schema: schema, name: children.removeFirst(), shape: shape, account: "account_id")
            child.parentIndex = 0
            child.parentColumns = parentColumns(of: parent, in: child)
            if chance(0.4) { child.blobColumn = "blob_id" }
            tables.append(child)
            let childIndex = tables.count - 1
            if chance(0.4), !children.isEmpty {
                var grandchild = keyed(
                    schema: schema, name: children.removeFirst(), shape: shape, account: "account_id")
                grandchild.parentIndex = childIndex
                grandchild.parentColumns = parentColumns(of: child, in: grandchild)
                tables.append(grandchild)
            }
        }
        if options.newSyntax, chance(0.5), !joins.isEmpty {
            let parentIndex = Int.random(in: 0..<tables.count, using: &random)
            tables.append(join(schema: schema, name: joins.removeFirst(), under: tables[parentIndex], at: parentIndex))
        }
        var clocks: [ClockType] = [.timestamptz, .timestamptz, .timestamp, .date]
        if options.precisionClocks { clocks.append(.precise) }
        let minimum = pick(Self.minimums)
        let maximum = pick(Self.maximums)
        return EntityModel(
            name: "e\(index)_" + name.lowercased().filter { $0.isLetter || $0 == "_" },
            tables: tables, clock: pick(["closed_at", "EndedAt", "day_of", "ts"]), clockType: pick(clocks),
            guardPredicate: pick(Guard.random),
            versions: chance(0.2) ? ("item", Int.random(in: 1...3, using: &random)) : nil,
            deletes: index == 0 || chance(0.85), minimum: minimum, defaultInterval: pick(Self.defaults),
            maximum: maximum, batchSize: Int.random(in: 3...15, using: &random))
    }

    /// A table with an id of its own, keyed as `shape` says.
    private mutating func keyed(schema: String, name: String, shape: KeyShape, account: String) -> TableModel {
        let id = pick(["id", "Id", "ref_no"])
        let key: [String] =
            switch shape {
            case .single: [id]
            case .withAccount: [account, id]
            case .sharded: ["shard", id]
            }
        return TableModel(
            schema: schema, name: name, account: account, keyColumns: key, idColumn: id,
            keyType: pick(KeyType.allCases), shape: shape)
    }

    /// The child's columns that reference `parent`'s key: its own account column stands for the
    /// parent's account column, so the foreign key keeps both rows in one tenant.
    private func parentColumns(of parent: TableModel, in child: TableModel) -> [String] {
        parent.keyColumns.map { column in
            if column == parent.account, let account = child.account { return account }
            return column == parent.shardColumn ? "parent_shard" : "parent_id"
        }
    }

    /// A leaf `(parent key…, user_id)` whose primary key is all its columns: no id of its own.
    private func join(schema: String, name: String, under parent: TableModel, at index: Int) -> TableModel {
        var table = TableModel(
            schema: schema, name: name, account: parent.shape == .withAccount ? "account_id" : nil, keyColumns: [],
            idColumn: nil, keyType: .bigint, shape: parent.shape, parentIndex: index, isJoin: true)
        table.parentColumns = parentColumns(of: parent, in: table)
        table.keyColumns = table.parentColumns + ["user_id"]
        return table
    }
}
