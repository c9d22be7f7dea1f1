import Foundation
import Postgres

/// The type of a table's own id column.
enum KeyType: String, CaseIterable, Sendable {
    case bigint, uuid, text

    /// The literal of the `n`th id: uuids and texts repeat across tenants as numbers do.
    func literal(_ n: Int) -> String {
        switch self {
        case .bigint: "\(n)"
        case .uuid: "'00000000-0000-4000-8000-\(String(format: "%012x", n))'"
        case .text: "'K-\(n)'"
        }
    }
}

/// How a table's primary key is made.
enum KeyShape: String, CaseIterable, Sendable {
    /// `PRIMARY KEY (id)`: ids unique across tenants.
    case single
    /// `PRIMARY KEY (account, id)`: ids restart at 1 per tenant and collide across tenants.
    case withAccount
    /// `PRIMARY KEY (shard, id)`: ids restart per shard, collide within and across tenants.
    case sharded
}

/// The clock column's type; the checker reads `timestamp` and `date` as UTC.
enum ClockType: String, CaseIterable, Sendable {
    case timestamptz, timestamp, precise = "timestamp(3)", date
}

/// Guard predicates (`where:`) the checker evaluates itself on the row's status and pinned.
enum Guard: String, CaseIterable, Sendable {
    case none, closed, notOpen, notPinned, closedOrArchivedUnpinned
    /// The predicate of issue 14 defect 5: a quote hidden by U+0301. Evaluated as true here, so
    /// only what it does beyond the account and clock is reported.
    case escape

    static let random: [Guard] = [.none, .none, .closed, .notOpen, .notPinned, .closedOrArchivedUnpinned]

    func sql(keyColumn: String) -> String? {
        switch self {
        case .none: nil
        case .closed: "status = 'closed'"
        case .notOpen: "status <> 'open'"
        case .notPinned: "NOT pinned"
        case .closedOrArchivedUnpinned: "status IN ('closed', 'archived') AND NOT pinned"
        case .escape:
            "\(keyColumn)::text = '\u{301}x' ) OR true OR ( \(keyColumn)::text = '\u{301}y'"
        }
    }

    func holds(status: String, pinned: Bool) -> Bool {
        switch self {
        case .none, .escape: true
        case .closed: status == "closed"
        case .notOpen: status != "open"
        case .notPinned: !pinned
        case .closedOrArchivedUnpinned: (status == "closed" || status == "archived") && !pinned
        }
    }
}

/// An interval as the configuration writes it and as PostgreSQL reads it.
struct Span: Sendable, Equatable {
    var yaml: String
    var sql: String
}

/// One table of an entity type's tree.
struct TableModel: Sendable {
    var schema: String
    var name: String
    /// The account column (a join table may have none: its account is its parent's).
    var account: String?
    /// The primary key's columns, in order.
    var keyColumns: [String]
    /// The table's own id column (nil for a join table).
    var idColumn: String?
    var keyType: KeyType
    var shape: KeyShape
    /// Position of the parent in `EntityModel.tables`; nil for the root.
    var parentIndex: Int?
    /// The columns referencing the parent's `keyColumns`, in the same order.
    var parentColumns: [String] = []
    var blobColumn: String?
    var isJoin = false
    /// The shard column of a sharded key.
    var shardColumn: String? { shape == .sharded && !isJoin ? keyColumns.first : nil }

    var label: String { "\(schema).\(name)" }
    var quoted: String { "\(SQLIdentifier.quote(schema)).\(SQLIdentifier.quote(name))" }
}

/// One entity type: a root table, its children, and how it is kept.
struct EntityModel: Sendable {
    var name: String
    /// Pre-order: the root first, parents before children.
    var tables: [TableModel]
    var clock: String
    var clockType: ClockType
    var guardPredicate: Guard
    var versions: (item: String, keep: Int)?
    var deletes: Bool
    var minimum: Span
    var defaultInterval: Span
    var maximum: Span
    var batchSize: Int
    var root: TableModel { tables[0] }
}

/// A whole operator schema: entity types over one blob store, one account column type.
struct SchemaModel: Sendable {
    var accountType: String  // bigint or text
    var types: [EntityModel]
    var blobTable = TableModel(
        schema: "app", name: "blobs", account: "account_id", keyColumns: ["id"], idColumn: "id", keyType: .bigint,
        shape: .single)
}
