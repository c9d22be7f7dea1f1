import Postgres
import Retention

/// A registry checked against the live database, with the column types it found and the
/// SQL it generates. Identifiers are quoted; the only text pasted into SQL unquoted is a
/// predicate that passed `Predicate.check` and EXPLAIN (inside a SQL function of its own,
/// so it can only narrow the rows), and type names from `format_type`.
public struct CompiledRegistry: Sendable {
    public let registry: Registry
    public let entityTypes: [String: CompiledEntityType]
    public let blobStores: [String: CompiledBlobStore]
    /// The SHA-256 of the registry in force this was compiled from (`lethe.registry_source`);
    /// nil when compiled from a configuration file. Deleting transactions check it is still
    /// the one in force (`RegistryGuard`).
    public var version: String? = nil

    public var isEmpty: Bool { registry.isEmpty }

    /// The unique indexes that prove the keys of every table of every entity type.
    public var keyProofs: [Int64] {
        Array(Set(entityTypes.values.flatMap { $0.tables.compactMap(\.key.proof) })).sorted()
    }
}

/// How a clock column compares with a `timestamptz` cutoff: `timestamp` and `date`
/// columns are read as UTC.
public enum ClockKind: String, Sendable {
    case timestamptz, timestamp, date

    /// `cutoff` (a timestamptz expression) in the column's own type, so its index applies.
    /// A `date` is a whole UTC day: it is before the cutoff only once that day has ended
    /// before it, never while the cutoff falls within the day.
    func bound(_ cutoff: String) -> String {
        switch self {
        case .timestamptz: "(\(cutoff))"
        case .timestamp: "((\(cutoff)) AT TIME ZONE 'UTC')"
        case .date: "(((\(cutoff)) AT TIME ZONE 'UTC')::date)"
        }
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
    /// How a row of this table is named: unique across the table (see `CompiledKey`).
    let key: CompiledKey
    /// The parent's position in `CompiledEntityType.tables` (nil for the root).
    let parentIndex: Int?
    /// The columns holding the parent's key, in the order of the parent's key columns.
    let parent: [CompiledColumn]
    /// The table's own account column: the root's always, a child's when configured.
    let account: CompiledColumn?
    /// Blob columns: (quoted column, store).
    let blobs: [(column: String, store: String)]
}

/// An entity type with its tables in pre-order (root first, parents before children).
public struct CompiledEntityType: Sendable {
    public let type: EntityType
    public let tables: [CompiledTable]
    let clock: String
    let clockKind: ClockKind
    /// The SQL function (qualified name) that evaluates the type's predicate over a root row
    /// (created by `RegistrySync`), and the same expression inline over `r` (to check it
    /// before the function exists).
    let predicateFunction: String?
    let inlinePredicate: String?

    public var name: String { type.name }
    var root: CompiledTable { tables[0] }
    /// The root's account column (every root has one), quoted, and its type.
    var account: String { root.account!.sql }
    var accountType: String { root.account!.type }

    /// True where `alias`'s account column holds exactly the account id `expression` (a
    /// text expression): equal as the column's type (so its index applies) and equal as
    /// text. `01` never stands for account `1`, a `varchar(n)` cast never truncates one id
    /// into another, and a type whose `=` is coarser than its text (`numeric` 1 and 1.0, a
    /// case-insensitive collation: the text is compared byte for byte, `COLLATE "C"`) never
    /// lets one account reach another's rows.
    static func accountMatch(_ alias: String, column: CompiledColumn, account expression: String) -> String {
        "\(alias).\(column.sql) = (\(expression))::\(column.type) "
            + "AND (\(alias).\(column.sql))::text COLLATE \"C\" = (\(expression))::text"
    }

    /// The eligibility filter for rows of this account (alias `r`): clock before `cutoff`,
    /// key present, predicate true, and not among the newest versions kept. The predicate
    /// is a function call (or, with `inline`, a scalar subquery): it can only narrow the set.
    func filter(account accountExpression: String, cutoff: String, inline: Bool = false) -> String {
        var sql = Self.accountMatch("r", column: root.account!, account: accountExpression)
        sql += " AND r.\(clock) < \(clockKind.bound(cutoff)) AND \(root.key.notNull("r"))"
        if let call = inline ? inlinePredicate : predicateFunction.map({ "\($0)(r)" }) {
            sql += " AND \(call) IS TRUE"
        }
        if let versions = type.versions {
            let item = SQLIdentifier.quote(versions.item)
            let newest = root.key.columns.map { "v.\($0.sql) DESC" }.joined(separator: ", ")
            sql += """
                 AND r.\(item) IS NOT NULL AND (\(root.key.list("r"))) NOT IN (SELECT \(root.key.list("v")) FROM \(root.sql) AS v
                 WHERE v.\(account) = r.\(account) AND (v.\(account))::text COLLATE "C" = (r.\(account))::text
                   AND v.\(item) = r.\(item)
                 ORDER BY v.\(clock) DESC NULLS FIRST, \(newest) LIMIT \(versions.keep))
                """
        }
        return sql
    }

    /// $1 account, $2 cutoff, $3 limit: locks the oldest eligible roots, returning their
    /// keys and blob columns as text.
    var selectRoots: String {
        let blobColumns = root.blobs.map { ", r.\($0.column)::text" }.joined()
        return """
            SELECT \(root.key.text("r"))\(blobColumns) FROM \(root.sql) AS r
            WHERE \(filter(account: "$1::text", cutoff: "$2::timestamptz"))
            ORDER BY r.\(clock), \(root.key.list("r"))
            LIMIT $3
            FOR UPDATE OF r SKIP LOCKED
            """
    }

    /// The rows of table `index` under the batch's roots ($1 keys, $2 account), as a
    /// condition on alias `alias`: its parent columns hold a key of the parent's rows, up the
    /// tree to the roots, which are the account's. A child with an account column of its
    /// own must hold the account too.
    func under(_ index: Int, alias: String) -> String {
        ofAccount(index, alias: alias, account: "$2::text", roots: "$1::text[]")
    }

    /// True where row `alias` of table `index` belongs to the account `account` (a text
    /// expression): a root by its account column, a child through its parents up to a root
    /// of the account (and its own account column, when configured). What a restore checks
    /// of every record before it inserts it.
    func belongs(_ index: Int, alias: String, account: String) -> String {
        ofAccount(index, alias: alias, account: account, roots: nil)
    }

    /// The condition of `under` and `belongs`: the account's rows of table `index`, found
    /// through their parents up to the roots; with `roots` (a `text[]` of keys), only under those.
    private func ofAccount(_ index: Int, alias: String, account: String, roots: String?) -> String {
        let table = tables[index]
        var conditions: [String] = []
        if let column = table.account { conditions.append(Self.accountMatch(alias, column: column, account: account)) }
        if let parentIndex = table.parentIndex {
            let above = tables[parentIndex]
            let next = "p\(parentIndex)"
            let columns = table.parent.map { "\(alias).\($0.sql)" }.joined(separator: ", ")
            conditions.append(
                "(\(columns)) IN (SELECT \(above.key.list(next)) FROM \(above.sql) AS \(next) "
                    + "WHERE \(ofAccount(parentIndex, alias: next, account: account, roots: roots)))")
        } else if let roots {
            conditions.append(table.key.isIn(alias, array: roots))
        }
        return conditions.joined(separator: " AND ")
    }

    /// $1 root keys, $2 account: deletes table `index`'s rows under those roots, returning
    /// their blob columns as text (when it has any). Run child-first: the parents are still there.
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
            cutoff:
                "lethe.retention_cutoff(s.notice_horizon, s.effective_interval, "
                + "(SELECT t.min_interval FROM lethe.entity_types t WHERE t.name = '\(name)'))",
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
        func keys(_ table: CompiledTable, _ alias: String) -> String {
            table.key.columns.enumerated().map { "\(alias).\($0.element.sql) AS k\($0.offset)" }
                .joined(separator: ", ")
        }
        var ctes = [
            """
            s AS (SELECT cutoff FROM lethe.retention_status WHERE account_id = $1 AND entity_type = '\(name)'),
            t0 AS MATERIALIZED (SELECT \(keys(root, "r")), \(clockKind.asTimestamptz("r.\(clock)")) AS c
                                FROM \(root.sql) AS r, s WHERE \(filter(account: "$1::text", cutoff: "s.cutoff")))
            """
        ]
        for (index, table) in tables.enumerated().dropFirst() {
            let above = tables[table.parentIndex!]
            let parentKeys = above.key.columns.indices.map { "k\($0)" }.joined(separator: ", ")
            var condition =
                "(\(table.parent.map { "c.\($0.sql)" }.joined(separator: ", "))) IN (SELECT \(parentKeys) FROM t\(table.parentIndex!))"
            if let account = table.account {
                condition += " AND " + Self.accountMatch("c", column: account, account: "$1::text")
            }
            let selected = table.key.columns.isEmpty ? "1 AS k" : keys(table, "c")
            ctes.append(
                """
                t\(index) AS MATERIALIZED (SELECT \(selected) FROM \(table.sql) AS c WHERE \(condition))
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

    /// The hash a blob row (alias `b`) is planned, packed and deleted by. With a content
    /// column: the md5 of the row's JSON without its content and of the content's own md5.
    /// `md5(row_to_json(b))` would hex-encode every blob's bytes into JSON text (twice their
    /// size) in each of the three passes over them, which bounded a recordings tenant's archive
    /// at about 9 MB/s; PostgreSQL's md5 of the bytes runs at hundreds of MB/s.
    /// NULL where `b` is NULL (an outer join that found no blob of the account): that blob is
    /// recorded without a hash, so never archived or deleted. (`jsonb_populate_record` of a
    /// NULL row is a row of NULLs, not NULL, hence the test on the key.)
    var rowHash: String {
        guard let content else { return "md5(row_to_json(b)::text)" }
        let hash = "md5(\(rowJSON) || ':' || coalesce(md5(b.\(content)), 'null'))"
        return "CASE WHEN b.\(key) IS NULL THEN NULL ELSE \(hash) END"
    }

    /// True where blob `alias` is the account's (`expression`, a text expression; canonical ids only).
    func ofAccount(_ expression: String, alias: String = "b") -> String {
        CompiledEntityType.accountMatch(
            alias, column: CompiledColumn(name: store.account, type: accountType), account: expression)
    }

    /// $1 blob keys, $2 account: deletes those of the account's blobs nothing references.
    /// No row locks first (they would cost a WAL record per blob): two batches never delete
    /// the same blob, because each still sees the other's uncommitted rows referencing it.
    var deleteUnreferenced: String {
        """
        DELETE FROM \(sql) AS b
        WHERE b.\(key) = ANY($1::text[]::\(keyType)[]) AND \(ofAccount("$2::text"))
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
            WHERE \(ofAccount("$2::text")) AND \(unreferenced)
            ON CONFLICT DO NOTHING
            RETURNING 1
        ), forgotten AS (
            DELETE FROM lethe.orphan_blobs o
            WHERE o.store = $1 AND o.account_id = $2
              AND NOT EXISTS (SELECT 1 FROM \(sql) AS b WHERE b.\(key) = o.blob_key::\(keyType)
                              AND \(ofAccount("$2::text")) AND \(unreferenced))
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
            WHERE b.\(key) = v.blob_key::\(keyType) AND \(ofAccount("$2::text")) AND \(unreferenced)
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
