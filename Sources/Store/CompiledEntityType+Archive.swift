import Postgres
import Retention

/// The SQL of the archive job for one entity type: record the manifest (keys and content
/// hashes), export the rows still as recorded, and before deleting find the roots whose rows
/// changed. Manifest rows carry the table's position in `tables` (0: the root).
extension CompiledEntityType {
    /// $1 job, $2 account, $3 cutoff, $4 limit, $5 and $6 the keyset cursor (the clock as
    /// JSON text and the key of the last root planned; NULL: from the start): records the next
    /// eligible roots in the order (clock, key) that no other open job of the account holds,
    /// with the hash of their content. Keep-only types take every current row in key order
    /// ($3 and $5 unused: their clock may be NULL). Returns the roots selected, the cursor after
    /// the last of them, and the keys recorded (a root the job already holds is not counted).
    var planRootsChunk: String {
        let keyed = root.key.parts.indices.map { root.key.decode($0, of: "$6::text") }
        let eligible: String
        let order: String
        let after: String
        if type.deletes {
            eligible = filter(account: "$2::text", cutoff: "$3::timestamptz")
            order = "r.\(clock), \(root.key.list("r"))"
            // The row comparison alone is no index condition on (account, clock): the clock's
            // own bound lets each chunk start at the cursor instead of the account's oldest root.
            let clockAfter = "(($5::text)::jsonb #>> '{}')::\(clockKind.rawValue)"
            after =
                "r.\(clock) >= \(clockAfter) AND (r.\(clock), \(root.key.list("r"))) > (\(clockAfter), \(keyed.joined(separator: ", ")))"
        } else {
            eligible =
                Self.accountMatch("r", column: root.account!, account: "$2::text")
                + " AND \(root.key.notNull("r")) AND $3::timestamptz IS NOT DISTINCT FROM $3 AND $5::text IS NOT DISTINCT FROM $5"
            order = root.key.list("r")
            var first = ""
            if case .column(let column) = root.key.parts[0] { first = "r.\(column.sql) >= \(keyed[0]) AND " }
            after = "\(first)(\(root.key.list("r"))) > (\(keyed.joined(separator: ", ")))"
        }
        let notElsewhere =
            type.deletes
            ? """
             AND NOT EXISTS (SELECT 1 FROM lethe.archive_manifest o JOIN lethe.archive_jobs j ON j.job_id = o.job_id
                             WHERE o.entity_type = '\(name)' AND o.table_index = 0 AND o.row_key = \(root.key.text("r"))
                               AND j.account_id = $2 AND j.state <> 'deleted' AND j.job_id <> $1)
            """ : ""
        return """
            WITH picked AS MATERIALIZED (
                SELECT \(root.key.text("r")) AS k, md5(row_to_json(r)::text) AS h,
                       \(type.deletes ? "to_json(r.\(clock))::text" : "NULL::text") AS c,
                       row_number() OVER (ORDER BY \(order)) AS n
                FROM \(root.sql) AS r
                WHERE \(eligible)\(notElsewhere) AND ($6::text IS NULL OR \(after))
                ORDER BY \(order)
                LIMIT $4
            ), recorded AS (
                INSERT INTO lethe.archive_manifest (job_id, entity_type, table_index, row_key, root_key, row_hash)
                SELECT $1, '\(name)', 0, p.k, p.k, p.h FROM picked p
                ON CONFLICT DO NOTHING
                RETURNING row_key
            )
            SELECT (SELECT count(*) FROM picked)::bigint,
                   (SELECT p.c FROM picked p ORDER BY p.n DESC LIMIT 1),
                   (SELECT p.k FROM picked p ORDER BY p.n DESC LIMIT 1),
                   (SELECT coalesce(array_agg(row_key), '{}') FROM recorded)
            """
    }

    /// True where row `alias` of table `index` has a parent among the job's manifest rows
    /// `m` of the parent table (its parent columns hold that row's key), and, with an
    /// account column of its own, is the job's account's ($2).
    private func childOf(_ index: Int, alias: String, manifest m: String) -> String {
        let table = tables[index]
        let above = tables[table.parentIndex!]
        var conditions = table.parent.enumerated().map {
            "\(alias).\($0.element.sql) = \(above.key.decode($0.offset, of: "\(m).row_key"))"
        }
        if let account = table.account {
            conditions.append(Self.accountMatch(alias, column: account, account: "$2::text"))
        }
        return conditions.joined(separator: " AND ")
    }

    /// $1 job, $2 account, $3 root keys: records table `index`'s rows under its parents'
    /// manifest rows of those roots, with their hashes. `skippingHeld`: rows whose key the job
    /// holds already are left out (`ON CONFLICT DO NOTHING`); without it such a row fails the
    /// statement (`ArchiveJobs.planChildren` runs it that way first: a third cheaper).
    func planChildren(_ index: Int, skippingHeld: Bool = true) -> String {
        let table = tables[index]
        return """
            INSERT INTO lethe.archive_manifest (job_id, entity_type, table_index, row_key, root_key, row_hash)
            SELECT $1, '\(name)', \(index), \(table.key.text("c")), m.root_key, md5(row_to_json(c)::text)
            FROM lethe.archive_manifest m
            JOIN \(table.sql) AS c ON \(childOf(index, alias: "c", manifest: "m"))
            WHERE m.job_id = $1 AND m.entity_type = '\(name)' AND m.table_index = \(table.parentIndex!)
              AND m.root_key = ANY($3::text[]) AND $2::text IS NOT NULL AND \(table.key.notNull("c"))
            \(skippingHeld ? "ON CONFLICT DO NOTHING" : "")
            """
    }

    /// $1 job, $2 account, $3 root keys: records the blobs table `index`'s manifest rows of those roots reference (one
    /// statement per column), with the hash of the account's blob rows as they are now; a
    /// blob of another account is recorded without a hash, so it is never archived or deleted.
    func planBlobs(_ index: Int, stores: [String: CompiledBlobStore]) -> [String] {
        let table = tables[index]
        return table.blobs.compactMap { blob in
            guard let store = stores[blob.store] else { return nil }
            return """
                INSERT INTO lethe.archive_manifest_blobs (job_id, store, blob_key, row_hash)
                SELECT DISTINCT $1, '\(blob.store)', t.\(blob.column)::text, \(store.rowHash)
                FROM lethe.archive_manifest m
                JOIN \(table.sql) AS t ON \(table.key.equals("t", text: "m.row_key"))
                LEFT JOIN \(store.sql) AS b ON b.\(store.key) = t.\(blob.column) AND \(store.ofAccount("$2::text"))
                WHERE m.job_id = $1 AND m.entity_type = '\(name)' AND m.table_index = \(index)
                  AND m.root_key = ANY($3::text[]) AND t.\(blob.column) IS NOT NULL
                ON CONFLICT DO NOTHING
                """
        }
    }

    /// $1 account, $2 cutoff, $3 root keys: locks those of the roots that are still
    /// eligible now, returning their keys and blob columns as text (as `selectRoots`).
    var lockArchivedRoots: String {
        let blobColumns = root.blobs.map { ", r.\($0.column)::text" }.joined()
        return """
            SELECT \(root.key.text("r"))\(blobColumns) FROM \(root.sql) AS r
            WHERE \(root.key.isIn("r", array: "$3::text[]"))
              AND \(filter(account: "$1::text", cutoff: "$2::timestamptz"))
            ORDER BY \(root.key.list("r"))
            FOR UPDATE OF r SKIP LOCKED
            """
    }

    /// $1 root keys, $2 account, $3 job: deletes table `index`'s rows under the roots, but
    /// only those the job archived exactly as they are now and on which no remaining row of
    /// a child table depends. `changedRoots` already spared the roots where either fails;
    /// this makes the rule hold inside the statement too, against rows that arrive between
    /// the check and the delete (READ COMMITTED: a table without a foreign key to its parent
    /// takes no lock that would make such an insert wait).
    func deleteArchived(_ index: Int) -> String {
        let table = tables[index]
        var conditions = [
            under(index, alias: "t"),
            """
            EXISTS (SELECT 1 FROM lethe.archive_manifest m
                    WHERE m.job_id = $3 AND m.entity_type = '\(name)' AND m.table_index = \(index)
                      AND m.row_key = \(table.key.text("t")) AND m.row_hash = md5(row_to_json(t)::text))
            """,
        ]
        if table.key.isContentNamed {
            // Identical rows share a key: none of them goes when there are more than the archive holds.
            conditions.append(
                """
                \(table.key.text("t")) NOT IN (
                    SELECT g.k FROM (SELECT \(table.key.text("d")) AS k, count(*) AS n FROM \(table.sql) AS d
                                     WHERE \(under(index, alias: "d")) GROUP BY 1) AS g
                    WHERE \(moreThanArchived(index, job: "$3")))
                """)
        }
        let keyColumns = table.key.columns
        for child in tables where child.parentIndex == index {
            let joined = zip(child.parent, keyColumns).map { "k.\($0.sql) = t.\($1.sql)" }.joined(separator: " AND ")
            conditions.append("NOT EXISTS (SELECT 1 FROM \(child.sql) AS k WHERE \(joined))")
        }
        let returning =
            table.blobs.isEmpty
            ? "" : " RETURNING " + table.blobs.map { "t.\($0.column)::text" }.joined(separator: ", ")
        return "DELETE FROM \(table.sql) AS t WHERE \(conditions.joined(separator: " AND "))\(returning)"
    }

    /// True where group `g` (`k` a key of table `index`, named by content, and `n` the rows
    /// with that key now) has more rows than the job's archive holds (`copies`; NULL: one).
    /// Counted per key over all the batch's rows at once, not per row: a join table need not
    /// have an index on its parent columns.
    private func moreThanArchived(_ index: Int, job: String) -> String {
        """
        g.n > coalesce((SELECT m.copies FROM lethe.archive_manifest m
                        WHERE m.job_id = \(job) AND m.entity_type = '\(name)' AND m.table_index = \(index)
                          AND m.row_key = g.k), 1)
        """
    }

    /// $1 root keys, $2 job: the roots under which table `index` has a row that is not in
    /// the manifest as archived (new, or changed since), or references a blob that is not
    /// archived as it is now. Those roots are left for the next cycle.
    func changedRoots(_ index: Int, blobStores: [String: CompiledBlobStore]) -> String {
        let alias = "c\(index)"
        var joins = "\(tables[index].sql) AS \(alias)"
        var current = index
        while let parentIndex = tables[current].parentIndex {
            let parent = tables[parentIndex]
            let on = zip(tables[current].parent, parent.key.columns).map {
                "c\(current).\($0.sql) = c\(parentIndex).\($1.sql)"
            }.joined(separator: " AND ")
            joins += " JOIN \(parent.sql) AS c\(parentIndex) ON \(on)"
            current = parentIndex
        }
        let table = tables[index]
        var changed = [
            """
            NOT EXISTS (SELECT 1 FROM lethe.archive_manifest m
                        WHERE m.job_id = $2 AND m.entity_type = '\(name)' AND m.table_index = \(index)
                          AND m.row_key = \(table.key.text(alias)) AND m.row_hash = md5(row_to_json(\(alias))::text))
            """
        ]
        for blob in table.blobs {
            guard let store = blobStores[blob.store] else { continue }
            changed.append(
                """
                (\(alias).\(blob.column) IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM lethe.archive_manifest_blobs mb JOIN \(store.sql) AS b ON b.\(store.key) = mb.blob_key::\(store.keyType)
                    WHERE mb.job_id = $2 AND mb.store = '\(blob.store)' AND mb.blob_key = \(alias).\(blob.column)::text
                      AND \(store.ofAccount("(SELECT j.account_id FROM lethe.archive_jobs j WHERE j.job_id = $2)"))
                      AND mb.row_hash = \(store.rowHash)))
                """)
        }
        // Identical rows share a key: more of them under a root than the archive holds (one
        // inserted since packing) spare the root.
        let copies =
            table.key.isContentNamed
            ? """

            UNION
            SELECT g.root FROM (SELECT \(root.key.text("c0")) AS root, \(table.key.text(alias)) AS k, count(*) AS n
                                FROM \(joins) WHERE \(root.key.isIn("c0", array: "$1::text[]")) GROUP BY 1, 2) AS g
            WHERE \(moreThanArchived(index, job: "$2"))
            """ : ""
        return """
            SELECT DISTINCT \(root.key.text("c0")) FROM \(joins)
            WHERE \(root.key.isIn("c0", array: "$1::text[]"))
              AND (\(changed.joined(separator: " OR ")))\(copies)
            """
    }
}

/// The archive job's SQL for a blob store.
extension CompiledBlobStore {
    /// The blob of manifest row `mb` (by key) if it is `account`'s, as `select`: a subquery
    /// the planner cannot flatten (`OFFSET 0`), so `b.key = mb.blob_key` stays an index
    /// condition whatever the statistics say.
    package func byKey(select: String, account: String) -> String {
        """
        SELECT \(select) FROM \(sql) AS b
        WHERE b.\(key) = mb.blob_key::\(keyType) AND \(ofAccount(account)) OFFSET 0
        """
    }

    /// $1 job, $2 account, $3 grace (ms): adds the account's blobs that stayed unreferenced
    /// past the grace (`lethe.orphan_blobs`, marked just before) and that no other open job
    /// holds, with the hash of the blob row as it is now (so packing exports it and deletion
    /// may take it). With archiving on these go with the archive job, not with orphan GC.
    var planOrphans: String {
        """
        INSERT INTO lethe.archive_manifest_blobs (job_id, store, blob_key, row_hash)
        SELECT $1, '\(store.name)', o.blob_key, \(rowHash) FROM lethe.orphan_blobs o
        JOIN \(sql) AS b ON b.\(key) = o.blob_key::\(keyType) AND \(ofAccount("$2::text"))
        WHERE o.store = '\(store.name)' AND o.account_id = $2
          AND o.first_seen_at <= now() - $3 * interval '1 millisecond'
          AND NOT EXISTS (SELECT 1 FROM lethe.archive_manifest_blobs mb JOIN lethe.archive_jobs j ON j.job_id = mb.job_id
                          WHERE mb.store = o.store AND mb.blob_key = o.blob_key AND j.account_id = $2
                            AND j.state <> 'deleted' AND j.job_id <> $1)
        ON CONFLICT DO NOTHING
        """
    }

    /// $1 key, $2 offset (1-based), $3 length, $4 account: a slice of one of the account's blobs.
    public var contentSlice: String? {
        guard let content else { return nil }
        return
            "SELECT substring(b.\(content) FROM $2::integer FOR $3::integer) FROM \(sql) AS b WHERE b.\(key) = $1::text::\(keyType) AND \(ofAccount("$4::text"))"
    }

    /// $1 blob keys, $2 account, $3 job: deletes those of the account's blobs that nothing
    /// references and that the job archived as they are now.
    var deleteArchived: String {
        """
        \(deleteUnreferenced)
          AND EXISTS (SELECT 1 FROM lethe.archive_manifest_blobs mb
                      WHERE mb.job_id = $3 AND mb.store = '\(store.name)' AND mb.blob_key = b.\(key)::text
                        AND mb.row_hash = \(rowHash))
        """
    }
}
