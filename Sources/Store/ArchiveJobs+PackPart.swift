import ArchiveFormat
import Foundation
import Postgres
import Retention

/// Where the next part of a job starts (`archive_pack_progress.cursor`): the export order is
/// blob contents by (store, key), blob rows by (store, key), then each type's tables by
/// (type, table, row key); a *section* is one store's contents, one store's rows or one table.
public struct PackCursor: Codable, Sendable, Equatable {
    /// The generation these parts belong to: a cursor of another generation counts as none.
    public var generation: Int
    /// The last part committed.
    public var part: Int
    /// The section the next part starts in (`PackSection.id`).
    public var section: String
    /// The last key of that section done (nil: the section starts afresh).
    public var after: String?
    /// In a contents section: the blob cut at the part boundary and the bytes of it written.
    public var resume: String?
    public var offset: Int64?
    /// `ArchiveJobs.packSectionsFingerprint` when the parts were cut (nil: a cursor written
    /// before it was kept, which counts as another registry).
    public var sections: String?

    public init(
        generation: Int, part: Int, section: String, after: String? = nil, resume: String? = nil,
        offset: Int64? = nil, sections: String? = nil
    ) {
        (self.generation, self.part, self.section, self.after) = (generation, part, section, after)
        (self.resume, self.offset, self.sections) = (resume, offset, sections)
    }
}

/// One section of the export order.
public enum PackSection: Sendable {
    case contents(CompiledBlobStore)
    case blobRows(CompiledBlobStore)
    case rows(CompiledEntityType, table: Int)

    public var id: String {
        switch self {
        case .contents(let store): "contents:\(store.store.name)"
        case .blobRows(let store): "blobs:\(store.store.name)"
        case .rows(let type, let index): "rows:\(type.name):\(index)"
        }
    }
}

/// Packing one part per transaction (docs/design-archive-pipeline.md, step 2): the part's
/// statements read only keys after the committed cursor, clear the hashes of the rows in
/// their key range the part does not write, and the part's backup-log row commits with the
/// cursor after it.
extension ArchiveJobs {
    /// Every section in export order.
    public var packSections: [PackSection] {
        let stores = registry.blobStores.values.sorted { $0.store.name < $1.store.name }
        return stores.filter { $0.content != nil }.map { .contents($0) } + stores.map { .blobRows($0) }
            + types.flatMap { type in type.tables.indices.map { .rows(type, table: $0) } }
    }

    /// The section ids in export order, as one string: a cursor cut under other sections
    /// does not count.
    public var packSectionsFingerprint: String { packSections.map(\.id).joined(separator: "\n") }

    /// In the last part's transaction: forgets the hashes of the job's manifest rows and blobs
    /// that no section of the registry in force packed (a type, table or store dropped since
    /// planning), so they are never deleted as archived.
    public func forgetUnpackedSections(_ job: ArchiveJob, on connection: Connection) throws {
        var tables: [String] = []
        var stores: [String] = []
        for section in packSections {
            switch section {
            case .rows(let type, let index): tables.append("\(type.name):\(index)")
            case .blobRows(let store): stores.append(store.store.name)
            case .contents: break
            }
        }
        try connection.execute(
            """
            UPDATE lethe.archive_manifest SET row_hash = NULL
            WHERE job_id = $1 AND row_hash IS NOT NULL AND NOT (entity_type || ':' || table_index = ANY($2::text[]))
            """, [job.id, tables])
        try connection.execute(
            """
            UPDATE lethe.archive_manifest_blobs SET row_hash = NULL
            WHERE job_id = $1 AND row_hash IS NOT NULL AND NOT (store = ANY($2::text[]))
            """, [job.id, stores])
    }

    /// Outside the part's transaction (it survives a crash): one more part transaction begins.
    public func beginPart(_ job: ArchiveJob, on connection: Connection) throws {
        try connection.execute(
            """
            INSERT INTO lethe.archive_pack_progress (job_id, generation, parts_begun) VALUES ($1, $2, 1)
            ON CONFLICT (job_id) DO UPDATE SET parts_begun = lethe.archive_pack_progress.parts_begun + 1
            """, [job.id, job.generation])
    }

    /// First in the part's REPEATABLE READ transaction: locks the job's progress (packers of
    /// one job take turns; one that waited fails to serialise and retries), checks that the job
    /// is still packing this generation, and returns the cursor (nil: the generation starts).
    public func lockForPacking(_ job: ArchiveJob, on connection: Connection) throws -> PackCursor? {
        let progress = try connection.query(
            "SELECT generation, cursor::text FROM lethe.archive_pack_progress WHERE job_id = $1 FOR UPDATE", [job.id]
        ).first
        let current = try connection.query(
            """
            SELECT state = \(StateSQL.literal(ArchiveJobState.packing)) AND generation = $2
            FROM lethe.archive_jobs WHERE job_id = $1
            """, [job.id, job.generation]
        ).first?.decode(Bool.self, at: 0)
        guard current == true else { throw ArchiveJobMoved(job: job.id, generation: job.generation) }
        guard let progress, let text = try progress.decode(String?.self, at: 1) else { return nil }
        let cursor = try JSONDecoder().decode(PackCursor.self, from: Data(text.utf8))
        return cursor.generation == job.generation ? cursor : nil
    }

    /// Last in the part's transaction, after the file is written and synced: records it in the
    /// backup log as `uploading` with the cursor after it. The last part (`next` nil) drops
    /// parts of this generation an earlier pack wrote beyond it (no site holds them: a
    /// generation is packed again under its own names only before any site held one) and
    /// moves the job on.
    public func recordPart(_ job: ArchiveJob, file: PackedFile, next: PackCursor?, on connection: Connection) throws {
        try recordFile(file, of: job, on: connection)
        let cursor = try next.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
        try connection.execute(
            """
            INSERT INTO lethe.archive_pack_progress (job_id, generation, cursor) VALUES ($1, $2, $3::jsonb)
            ON CONFLICT (job_id) DO UPDATE SET generation = $2, cursor = $3::jsonb
            """, [job.id, job.generation, cursor])
        guard next == nil else { return }
        try connection.execute(
            "DELETE FROM lethe.archive_files WHERE job_id = $1 AND generation = $2 AND part > $3",
            [job.id, job.generation, file.part])
        let moved = try connection.query(
            """
            UPDATE lethe.archive_jobs SET state = \(ArchiveJobEvent.pack.targetSQL), packed_at = clock_timestamp()
            WHERE job_id = $1 AND generation = $2 AND state = \(StateSQL.literal(ArchiveJobState.packing))
            RETURNING 1
            """, [job.id, job.generation])
        guard moved.first != nil else { throw ArchiveJobMoved(job: job.id, generation: job.generation) }
    }

    /// The parts this generation committed so far, by part (the spool must still hold them).
    public func packedParts(_ job: ArchiveJob, upTo part: Int, on connection: Connection) throws -> [String] {
        try connection.query(
            "SELECT file_name FROM lethe.archive_files WHERE job_id = $1 AND generation = $2 AND part <= $3 ORDER BY part",
            [job.id, job.generation, part]
        ).map { try $0.decode(String.self, at: 0) }
    }

    // MARK: - Key ranges of one section

    /// The next `limit` keys after `after` of a table's manifest rows that still have a hash.
    public func nextRowKeys(
        _ type: CompiledEntityType, table index: Int, job: UUID, after: String?, limit: Int, on connection: Connection
    ) throws -> [String] {
        try connection.query(
            """
            SELECT row_key FROM lethe.archive_manifest
            WHERE job_id = $1 AND entity_type = $2 AND table_index = $3 AND row_hash IS NOT NULL
              AND ($4::text IS NULL OR row_key > $4) ORDER BY row_key LIMIT $5
            """, [job, type.name, index, after, limit]
        ).map { try $0.decode(String.self, at: 0) }
    }

    /// Streams a table's hashed manifest rows with keys in (`after`, `upTo`] to `line`, each
    /// as the recorded hash, `\u{02}`, and the row as JSON as it is now.
    public func exportRows(
        _ type: CompiledEntityType, table index: Int, job: UUID, after: String?, upTo: String,
        on connection: Connection, _ line: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let query = Self.exportRowsQuery(
            type, table: index, jobLiteral: try connection.literal(job.uuidString.lowercased()),
            typeLiteral: try connection.literal(type.name),
            range: try Self.rangeSQL("m.row_key", after: after, upTo: upTo, on: connection))
        try connection.copyOut("COPY (\(query)) TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')", line)
    }

    /// The SELECT `exportRows` copies (literals quoted by the caller: COPY takes no
    /// parameters). Each manifest row of the batch fetches its row by key in a subquery the
    /// planner cannot flatten (`OFFSET 0`): joined, statistics of a large table and a
    /// manifest analysed after earlier jobs let it scan the whole table for every batch.
    /// ArchiveExportPlanTests checks that each row is fetched by key.
    package static func exportRowsQuery(
        _ type: CompiledEntityType, table index: Int, jobLiteral: String, typeLiteral: String, range: String
    ) -> String {
        let table = type.tables[index]
        return """
            SELECT m.row_hash, x.line FROM lethe.archive_manifest m
            CROSS JOIN LATERAL (SELECT row_to_json(t)::text AS line FROM \(table.sql) AS t
                                WHERE \(table.key.equals("t", text: "m.row_key")) OFFSET 0) AS x
            WHERE m.job_id = \(jobLiteral)::uuid AND m.entity_type = \(typeLiteral)
              AND m.table_index = \(index) AND m.row_hash IS NOT NULL AND \(range)
            ORDER BY m.row_key
            """
    }

    /// Forgets the hash of a table's manifest rows with keys in (`after`, `upTo`] whose hash is
    /// not among `written`: the hashes of the lines the part wrote, each checked by the packer
    /// against the bytes it wrote. A row's JSON holds its key, so a hash names one row as it
    /// was recorded; whatever the part did not write (a row gone or changed, a line the COPY
    /// quoted because a `json` value holds a line break, bytes another client encoding
    /// changed, a duplicate row under one key) loses its hash and is never deleted as archived.
    public func forgetRowsNotWritten(
        _ type: CompiledEntityType, table index: Int, job: UUID, after: String?, upTo: String, written: [String],
        on connection: Connection
    ) throws {
        try connection.execute(
            """
            UPDATE lethe.archive_manifest m SET row_hash = NULL
            WHERE m.job_id = $1 AND m.entity_type = $2 AND m.table_index = $3 AND m.row_hash IS NOT NULL
              AND ($4::text IS NULL OR m.row_key > $4) AND m.row_key <= $5
              AND NOT EXISTS (SELECT 1 FROM unnest($6::text[]) AS w(h) WHERE w.h = m.row_hash)
            """, [job, type.name, index, after, upTo, written])
    }

    /// Records how many lines the part wrote for each key of a table whose rows are named by
    /// their content (`copies`, migration 0017): `written` counts the lines per hash in (`after`,
    /// `upTo`]. A key with one line, or of a table with keys of its own, holds NULL; a count
    /// left by an earlier generation is replaced. Deletion spares a root under which a key has
    /// more identical rows than its archive holds.
    public func recordCopies(
        _ type: CompiledEntityType, table index: Int, job: UUID, after: String?, upTo: String,
        written: [String: Int], on connection: Connection
    ) throws {
        guard type.tables[index].key.isContentNamed else { return }
        let repeated = written.filter { $0.value > 1 }
        try connection.execute(
            """
            UPDATE lethe.archive_manifest m
            SET copies = (SELECT u.n FROM unnest($6::text[], $7::int[]) AS u(h, n) WHERE u.h = m.row_hash)
            WHERE m.job_id = $1 AND m.entity_type = $2 AND m.table_index = $3
              AND ($4::text IS NULL OR m.row_key > $4) AND m.row_key <= $5
              AND (m.copies IS NOT NULL OR m.row_hash = ANY($6::text[]))
            """, [job, type.name, index, after, upTo, Array(repeated.keys), Array(repeated.values)])
    }

    /// The next `limit` keys after `after` of a store's manifest blobs that still have a hash.
    public func nextBlobKeys(
        _ store: CompiledBlobStore, job: UUID, after: String?, limit: Int, on connection: Connection
    ) throws -> [String] {
        try connection.query(
            """
            SELECT blob_key FROM lethe.archive_manifest_blobs
            WHERE job_id = $1 AND store = $2 AND row_hash IS NOT NULL AND ($3::text IS NULL OR blob_key > $3)
            ORDER BY blob_key LIMIT $4
            """, [job, store.store.name, after, limit]
        ).map { try $0.decode(String.self, at: 0) }
    }

    /// The next `limit` hashed blobs after `after` that the account holds, with their content
    /// sizes (-1: NULL content), by key. For a store with a content column.
    public func nextBlobContents(
        _ store: CompiledBlobStore, job: ArchiveJob, after: String?, limit: Int, on connection: Connection
    ) throws -> [(key: String, size: Int64)] {
        guard let sql = Self.nextBlobContentsSQL(store) else { return [] }
        return try connection.query(sql, [job.id, job.accountID, store.store.name, after, limit]).map {
            try $0.decode((String, Int64).self)
        }
    }

    /// $1 job, $2 account, $3 store, $4 after (or NULL), $5 limit: `nextBlobContents`'s query;
    /// nil for a store without a content column.
    package static func nextBlobContentsSQL(_ store: CompiledBlobStore) -> String? {
        guard let content = store.content else { return nil }
        return """
            SELECT mb.blob_key, x.size FROM lethe.archive_manifest_blobs mb
            CROSS JOIN LATERAL (\(store.byKey(select: "coalesce(octet_length(b.\(content)), -1)::bigint AS size", account: "$2::text"))) AS x
            WHERE mb.job_id = $1 AND mb.store = $3 AND mb.row_hash IS NOT NULL AND ($4::text IS NULL OR mb.blob_key > $4)
            ORDER BY mb.blob_key LIMIT $5
            """
    }

    /// Forgets the hash of a store's manifest blobs with keys in (`after`, `upTo`] (nil: to the
    /// end) that are gone or no longer hash as recorded, in the part's snapshot; returns their keys.
    @discardableResult
    public func forgetChangedBlobs(
        _ store: CompiledBlobStore, job: ArchiveJob, after: String?, upTo: String?, on connection: Connection
    ) throws -> Set<String> {
        Set(
            try connection.query(
                Self.forgetChangedBlobsSQL(store), [job.id, job.accountID, store.store.name, after, upTo]
            ).map { try $0.decode(String.self, at: 0) })
    }

    /// $1 job, $2 account, $3 store, $4 after (or NULL), $5 up to (or NULL): `forgetChangedBlobs`'s
    /// statement. Each manifest blob fetches its blob by key (`byKey`): as a plain `NOT EXISTS`
    /// the planner hashed every blob of the account (an md5 of each content) for every batch,
    /// 0.6 s a batch for 46,000 small blobs, growing with the account. ArchiveExportPlanTests
    /// checks the plan.
    package static func forgetChangedBlobsSQL(_ store: CompiledBlobStore) -> String {
        """
        UPDATE lethe.archive_manifest_blobs mb SET row_hash = NULL
        WHERE mb.job_id = $1 AND mb.store = $3 AND mb.row_hash IS NOT NULL
          AND ($4::text IS NULL OR mb.blob_key > $4) AND ($5::text IS NULL OR mb.blob_key <= $5)
          AND NOT EXISTS (SELECT 1 FROM (\(store.byKey(select: "\(store.rowHash) AS h", account: "$2::text"))) AS x
                          WHERE x.h = mb.row_hash)
        RETURNING mb.blob_key
        """
    }

    /// Forgets the hash of a store's manifest blobs with keys in (`after`, `upTo`] whose row's
    /// JSON now (md5) is not among `written`, the lines the part wrote and checked: a line the
    /// COPY quoted (a line break in a `json` value) is left out of the archive, and its blob
    /// must then never be deleted as archived.
    public func forgetBlobRowsNotWritten(
        _ store: CompiledBlobStore, job: ArchiveJob, after: String?, upTo: String, written: [String],
        on connection: Connection
    ) throws {
        try connection.execute(
            Self.forgetBlobRowsNotWrittenSQL(store), [job.id, job.accountID, store.store.name, after, upTo, written])
    }

    /// $1 job, $2 account, $3 store, $4 after (or NULL), $5 up to, $6 the hashes written:
    /// `forgetBlobRowsNotWritten`'s statement.
    package static func forgetBlobRowsNotWrittenSQL(_ store: CompiledBlobStore) -> String {
        """
        UPDATE lethe.archive_manifest_blobs mb SET row_hash = NULL
        WHERE mb.job_id = $1 AND mb.store = $3 AND mb.row_hash IS NOT NULL
          AND ($4::text IS NULL OR mb.blob_key > $4) AND mb.blob_key <= $5
          AND NOT EXISTS (SELECT 1 FROM (\(store.byKey(select: "md5(\(store.rowJSON)) AS h", account: "$2::text"))) AS x
                          WHERE x.h = ANY($6::text[]))
        """
    }

    /// Streams a store's hashed blob rows with keys in (`after`, `upTo`] to `line`, each as the
    /// md5 of its JSON (the content column null), `\u{02}`, and that JSON, for the packer to
    /// check; `forgetChangedBlobs` of the same range ran first in the snapshot.
    public func exportBlobRows(
        _ store: CompiledBlobStore, job: ArchiveJob, after: String?, upTo: String, on connection: Connection,
        _ line: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let query = Self.exportBlobRowsQuery(
            store, jobLiteral: try connection.literal(job.id.uuidString.lowercased()),
            accountLiteral: try connection.literal(job.accountID),
            storeLiteral: try connection.literal(store.store.name),
            range: try Self.rangeSQL("mb.blob_key", after: after, upTo: upTo, on: connection))
        try connection.copyOut("COPY (\(query)) TO STDOUT WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')", line)
    }

    /// The SELECT `exportBlobRows` copies (literals quoted by the caller). Each manifest row
    /// fetches its blob by key (`byKey`): joined, an analysed manifest and `enable_sort = off`
    /// made the planner scan the account's blobs once per manifest row (a join filter), and
    /// ArchiveExportPlanTests fails.
    package static func exportBlobRowsQuery(
        _ store: CompiledBlobStore, jobLiteral: String, accountLiteral: String, storeLiteral: String, range: String
    ) -> String {
        """
        SELECT md5(x.line), x.line FROM lethe.archive_manifest_blobs mb
        CROSS JOIN LATERAL (\(store.byKey(select: "\(store.rowJSON) AS line", account: "\(accountLiteral)::text"))) AS x
        WHERE mb.job_id = \(jobLiteral)::uuid AND mb.store = \(storeLiteral) AND mb.row_hash IS NOT NULL AND \(range)
        ORDER BY mb.blob_key
        """
    }

    /// `column` in (`after`, `upTo`] as SQL with quoted literals (COPY takes no parameters).
    static func rangeSQL(_ column: String, after: String?, upTo: String, on connection: Connection) throws -> String {
        let upper = "\(column) <= \(try connection.literal(upTo))"
        guard let after else { return upper }
        return "\(column) > \(try connection.literal(after)) AND \(upper)"
    }
}
