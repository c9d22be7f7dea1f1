/// One kind of data an account keeps for a bounded time: rows of `table` belonging to an
/// account (`account` column), expiring `interval` after their `clock` column.
public struct EntityType: Sendable, Equatable {
    /// The type's name in `lethe.*` (`conversations`).
    public var name: String
    public var table: TableName
    /// The key columns (`[id]`, or `[account_id, id]`): together, or together with the
    /// account column, unique in `table` (the registry check proves it).
    public var key: [String]
    /// The column holding the account (tenant) id.
    public var account: String
    /// The timestamp the interval runs from; NULL is never eligible.
    public var clock: String
    /// An optional SQL boolean over the row (aliased `r`) that narrows eligibility.
    public var predicate: String?
    public var bounds: IntervalBounds
    /// Most root rows one batch deletes (with their children).
    public var batchSize: Int
    /// Tasks per (account, type) that run at once, their batches disjoint (SKIP LOCKED):
    /// more than 1 lets several workers share one huge tenant's backlog.
    public var lanes = 1
    /// How often each account's policy for this type is checked; nil: `retention.check_interval`.
    public var checkInterval: Duration?
    /// False for keep-only types: archived, never deleted.
    public var deletes: Bool
    public var blobs: [BlobReference]
    public var children: [ChildTable]
    public var versions: Versions?

    public init(
        name: String, table: TableName, key: [String], account: String, clock: String, predicate: String? = nil,
        bounds: IntervalBounds, batchSize: Int = 1000, checkInterval: Duration? = nil, deletes: Bool = true,
        blobs: [BlobReference] = [], children: [ChildTable] = [], versions: Versions? = nil
    ) {
        self.name = name
        self.table = table
        self.key = key
        self.account = account
        self.clock = clock
        self.predicate = predicate
        self.bounds = bounds
        self.batchSize = batchSize
        self.checkInterval = checkInterval
        self.deletes = deletes
        self.blobs = blobs
        self.children = children
        self.versions = versions
    }

    /// Every child table, parents before their children (depth-first, pre-order).
    public var allChildren: [ChildTable] {
        func flatten(_ children: [ChildTable]) -> [ChildTable] { children.flatMap { [$0] + flatten($0.children) } }
        return flatten(children)
    }
}

/// Rows of `table` that belong to a parent row (`parent` holds the parent's full key, column
/// for column) and are deleted with it, child-first, in the same transaction.
public struct ChildTable: Sendable, Equatable {
    public var table: TableName
    /// The child's own key columns; nil: `id` when that column is a unique key, else none
    /// (a leaf, such as a join table, is identified by its parent and its content).
    public var key: [String]?
    /// The columns holding the parent's key, in the order of the parent's key.
    public var parent: [String]
    /// The child's own account column, if it has one: every statement then checks it too.
    public var account: String?
    public var blobs: [BlobReference]
    public var children: [ChildTable]

    public init(
        table: TableName, key: [String]?, parent: [String], account: String? = nil, blobs: [BlobReference] = [],
        children: [ChildTable] = []
    ) {
        self.table = table
        self.key = key
        self.parent = parent
        self.account = account
        self.blobs = blobs
        self.children = children
    }
}

/// A column holding keys of a blob store's rows: deleting the row deletes the blob too
/// when nothing else references it.
public struct BlobReference: Sendable, Equatable {
    public var column: String
    public var store: String

    public init(column: String, store: String) {
        self.column = column
        self.store = store
    }
}

/// Versions mode: the newest `keep` rows of each `item` are kept whatever their age.
public struct Versions: Sendable, Equatable {
    public var item: String
    public var keep: Int

    public init(item: String, keep: Int) {
        self.item = item
        self.keep = keep
    }
}

/// A table of blobs (files, recordings, large bodies) that rows reference by key. Blobs
/// nobody references any more are collected by the orphan GC task after `grace`.
public struct BlobStore: Sendable, Equatable {
    public var name: String
    public var table: TableName
    public var key: String
    public var account: String
    public var grace: Duration
    public var batchSize: Int
    public var capPerRun: Int
    /// A `bytea` column holding the blob's bytes: archives store it as a file of its own
    /// (`blobs/STORE/KEY`) beside the row's other columns. Nil: the row is archived as it is.
    public var content: String?

    public init(
        name: String, table: TableName, key: String, account: String, grace: Duration = .seconds(7 * 86_400),
        batchSize: Int = 1000, capPerRun: Int = 100_000
    ) {
        self.name = name
        self.table = table
        self.key = key
        self.account = account
        self.grace = grace
        self.batchSize = batchSize
        self.capPerRun = capPerRun
    }
}
