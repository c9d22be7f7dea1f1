import Postgres
import Retention

/// A registry checked against the live database, with the column types it found and the
/// SQL it generates. Identifiers are quoted; the only text pasted into SQL unquoted is a
/// predicate that passed `Predicate.check` and EXPLAIN, and type names from `format_type`.
public struct CompiledRegistry: Sendable {
    public let registry: Registry
    public let entityTypes: [String: CompiledEntityType]
    public let blobStores: [String: CompiledBlobStore]

    public var isEmpty: Bool { registry.isEmpty }
}

/// How a clock column compares with a `timestamptz` cutoff: `timestamp` and `date`
/// columns are read as UTC.
public enum ClockKind: String, Sendable {
    case timestamptz, timestamp, date

    /// `cutoff` (a timestamptz expression) in the column's own type, so its index applies.
    func bound(_ cutoff: String) -> String {
        self == .timestamptz ? "(\(cutoff))" : "((\(cutoff)) AT TIME ZONE 'UTC')"
    }

    /// `column` as a timestamptz.
    func asTimestamptz(_ column: String) -> String {
        switch self {
        case .timestamptz: column
        case .timestamp: "(\(column) AT TIME ZONE 'UTC')"
        case .date: "(\(column)::timestamp AT TIME ZONE 'UTC')"
        }
    }
}

/// One table of an entity type's tree (the root or a child), ready for SQL.
public struct CompiledTable: Sendable {
    /// `app.messages` as configured, for logs and `rows_by_table`.
    public let label: String
    let sql: String
    let key: String
    let keyType: String
    /// The parent's position in `CompiledEntityType.tables` (nil for the root).
    let parentIndex: Int?
    /// The column holding the parent's key, and its type.
    let parent: String?
    let parentType: String?
    /// Blob columns: (quoted column, store).
    let blobs: [(column: String, store: String)]
}

/// An entity type with its tables in pre-order (root first, parents before children).
public struct CompiledEntityType: Sendable {
    public let type: EntityType
    public let tables: [CompiledTable]
    let account: String
    let accountType: String
    let clock: String
    let clockKind: ClockKind

    public var name: String { type.name }
    var root: CompiledTable { tables[0] }

    /// The eligibility filter for rows of this account (alias `r`): clock before `cutoff`,
    /// predicate true, and not among the newest versions kept.
    func filter(account accountExpression: String, cutoff: String) -> String {
        var sql = "r.\(account) = (\(accountExpression))::\(accountType) AND r.\(clock) < \(clockKind.bound(cutoff))"
        if let predicate = type.predicate { sql += " AND (\(predicate))" }
        if let versions = type.versions {
            let item = SQLIdentifier.quote(versions.item)
            sql += """
                 AND r.\(root.key) NOT IN (SELECT v.\(root.key) FROM \(root.sql) AS v
                 WHERE v.\(account) = r.\(account) AND v.\(item) = r.\(item)
                 ORDER BY v.\(clock) DESC NULLS FIRST, v.\(root.key) DESC LIMIT \(versions.keep))
                """
        }
        return sql
    }

    /// $1 account, $2 cutoff, $3 limit: locks the oldest eligible roots, returning their
    /// keys and blob columns as text.
    var selectRoots: String {
        let blobColumns = root.blobs.map { ", r.\($0.column)::text" }.joined()
        return """
            SELECT r.\(root.key)::text\(blobColumns) FROM \(root.sql) AS r
            WHERE \(filter(account: "$1::text", cutoff: "$2::timestamptz"))
            ORDER BY r.\(clock), r.\(root.key)
            LIMIT $3
            FOR UPDATE OF r SKIP LOCKED
            """
    }

    /// The rows of table `index` under the batch's roots ($1), as a condition on alias
    /// `alias`: its parent column in the parent's rows, up the tree to the roots' keys.
    func under(_ index: Int, alias: String) -> String {
        let table = tables[index]
        guard let parentIndex = table.parentIndex, let parent = table.parent else {
            return "\(alias).\(table.key) = ANY($1::text[]::\(table.keyType)[])"
        }
        if parentIndex == 0 { return "\(alias).\(parent) = ANY($1::text[]::\(table.parentType!)[])" }
        let above = tables[parentIndex]
        let next = "p\(parentIndex)"
        return
            "\(alias).\(parent) IN (SELECT \(next).\(above.key) FROM \(above.sql) AS \(next) WHERE \(under(parentIndex, alias: next)))"
    }

    /// $1 root keys: deletes table `index`'s rows under those roots, returning their blob
    /// columns as text (when it has any). Run child-first: the parents are still there.
    func delete(_ index: Int) -> String {
        let table = tables[index]
        let returning =
            table.blobs.isEmpty
            ? "" : " RETURNING " + table.blobs.map { "t.\($0.column)::text" }.joined(separator: ", ")
        return "DELETE FROM \(table.sql) AS t WHERE \(under(index, alias: "t"))\(returning)"
    }

    /// Per account of `lethe.retention_status` (alias `s`): expired rows present and the
    /// oldest clock; run by `lethe.retention_backlog_rows()`.
    var backlogSQL: String {
        perAccount(select: "x.oldest", cutoff: "s.cutoff", where: "s.cutoff IS NOT NULL")
    }

    /// Rows that expire before the account's notice horizon, and the earliest expiry;
    /// run by `lethe.upcoming_deletion_rows()`.
    var upcomingSQL: String {
        perAccount(
            select: "greatest(lethe.expires_at(x.oldest, s.effective_interval), now())",
            cutoff: "lethe.cutoff(s.notice_horizon, s.effective_interval)",
            where: "s.policy_runnable AND s.notice_horizon IS NOT NULL")
    }

    /// (account, type, rows, `select`) for every account whose status row passes `where`,
    /// counting its rows eligible before `cutoff` (x.n, oldest clock x.oldest).
    private func perAccount(select: String, cutoff: String, where condition: String) -> String {
        """
        SELECT s.account_id, '\(name)'::text, x.n, \(select)
        FROM lethe.retention_status s
        CROSS JOIN LATERAL (
            SELECT count(*)::bigint AS n, min(\(clockKind.asTimestamptz("r.\(clock)"))) AS oldest
            FROM \(root.sql) AS r
            WHERE \(filter(account: "s.account_id", cutoff: cutoff))
        ) x
        WHERE s.entity_type = '\(name)' AND \(condition) AND x.n > 0
        """
    }

    /// $1 account: per table, how many rows would go now, with the roots' oldest and newest
    /// clocks. Reads only.
    var previewSQL: String {
        var ctes = [
            """
            s AS (SELECT cutoff FROM lethe.retention_status WHERE account_id = $1 AND entity_type = '\(name)'),
            t0 AS MATERIALIZED (SELECT r.\(root.key) AS k, \(clockKind.asTimestamptz("r.\(clock)")) AS c
                                FROM \(root.sql) AS r, s WHERE \(filter(account: "$1::text", cutoff: "s.cutoff")))
            """
        ]
        for (index, table) in tables.enumerated().dropFirst() {
            ctes.append(
                """
                t\(index) AS MATERIALIZED (SELECT c.\(table.key) AS k FROM \(table.sql) AS c
                                    WHERE c.\(table.parent!) IN (SELECT k FROM t\(table.parentIndex!)))
                """)
        }
        let counts = tables.indices.map { "(SELECT count(*) FROM t\($0))" }.joined(separator: ", ")
        return
            "WITH \(ctes.joined(separator: ",\n")) SELECT (SELECT min(c) FROM t0), (SELECT max(c) FROM t0), \(counts)"
    }
}

/// A blob store with the SQL of orphan collection.
public struct CompiledBlobStore: Sendable {
    public let store: BlobStore
    let sql: String
    let key: String
    let keyType: String
    let account: String
    let accountType: String
    /// `NOT EXISTS` over every column that references the store (alias `b` for the blob).
    let unreferenced: String
    /// The quoted `bytea` column archived as a file of its own, if configured.
    let content: String?
    /// A blob row (alias `b`) as archived JSON text: with a content column, that column is null
    /// (its bytes are archived as a file of their own).
    let rowJSON: String

    /// $1 blob keys, $2 account: deletes those of the account's blobs nothing references.
    /// No row locks first (they would cost a WAL record per blob): two batches never delete
    /// the same blob, because each still sees the other's uncommitted rows referencing it.
    var deleteUnreferenced: String {
        """
        DELETE FROM \(sql) AS b
        WHERE b.\(key) = ANY($1::text[]::\(keyType)[]) AND b.\(account) = $2::text::\(accountType)
          AND \(unreferenced)
        """
    }

    /// $1 store, $2 account: records the account's unreferenced blobs (first seen now) and
    /// forgets candidates that are referenced again or gone. Returns (marked, forgotten).
    var mark: String {
        """
        WITH marked AS (
            INSERT INTO lethe.orphan_blobs (store, account_id, blob_key)
            SELECT $1, $2, b.\(key)::text FROM \(sql) AS b
            WHERE b.\(account) = $2::text::\(accountType) AND \(unreferenced)
            ON CONFLICT DO NOTHING
            RETURNING 1
        ), forgotten AS (
            DELETE FROM lethe.orphan_blobs o
            WHERE o.store = $1 AND o.account_id = $2
              AND NOT EXISTS (SELECT 1 FROM \(sql) AS b WHERE b.\(key) = o.blob_key::\(keyType)
                              AND b.\(account) = $2::text::\(accountType) AND \(unreferenced))
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM marked), (SELECT count(*) FROM forgotten)
        """
    }

    /// $1 store, $2 account, $3 grace in ms, $4 batch: deletes up to $4 blobs unreferenced
    /// since before the grace. Returns (deleted, candidates taken).
    var collect: String {
        """
        WITH victims AS MATERIALIZED (
            SELECT o.blob_key FROM lethe.orphan_blobs o
            WHERE o.store = $1 AND o.account_id = $2 AND o.first_seen_at <= now() - $3 * interval '1 millisecond'
            ORDER BY o.first_seen_at, o.blob_key
            LIMIT $4
            FOR UPDATE SKIP LOCKED
        ), gone AS (
            DELETE FROM \(sql) AS b
            USING victims v
            WHERE b.\(key) = v.blob_key::\(keyType) AND b.\(account) = $2::text::\(accountType) AND \(unreferenced)
            RETURNING 1
        ), forgotten AS (
            DELETE FROM lethe.orphan_blobs o USING victims v
            WHERE o.store = $1 AND o.account_id = $2 AND o.blob_key = v.blob_key
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM forgotten)
        """
    }
}
