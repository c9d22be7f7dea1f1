import Foundation
import Postgres
import Retention
import Store
import TestSupport
import Testing

@testable import LetheConfiguration

/// A part's export statements (ArchiveJobs+PackPart.swift) after autovacuum has analysed a fresh manifest, with
/// sorting off as the packer sets it: each fetches rows by key through an index, never
/// by comparing every manifest row with every row of the account (a nested loop's join
/// filter, which once made the COPY of 45,000 blob rows run for over ten minutes).
@Suite(.serialized) struct ArchiveExportPlanTests {
    /// The plan of `sql` (with `parameters`) as text, sorting off, in the packer's transaction kind.
    private func plan(
        _ sql: String, _ parameters: [any PostgresEncodable] = [], on connection: Connection
    ) throws
        -> String
    {
        try connection.withTransaction(.repeatableRead) { connection in
            try connection.execute("SELECT set_config('enable_sort', 'off', true)")
            return try connection.query("EXPLAIN " + sql, parameters).map { try $0.decode(String.self, at: 0) }
                .joined(separator: "\n")
        }
    }

    @Test func exportStatementsLookRowsUpByKeyAfterAnAnalyse() async throws {
        try await withMigratedDatabase { database in
            try await offThePool {
                let fixture = try ArchiveFixture(database: database, scale: 1500)
                try fixture.addFileSite()
                try fixture.enableArchiving()
                let id = try fixture.startJob()
                let jobs = try fixture.archiveJobs()
                let job = try fixture.openJob(id, of: jobs)
                try jobs.plan(job, on: fixture.connection)
                let blobs: Int = try fixture.connection.scalar(
                    "SELECT count(*)::int FROM lethe.archive_manifest_blobs WHERE job_id = $1::uuid AND row_hash IS NOT NULL",
                    [id])
                #expect(blobs > 500)
                // What autovacuum does to a fresh manifest while the job waits to be packed.
                try fixture.connection.execute(
                    "ANALYZE lethe.archive_manifest, lethe.archive_manifest_blobs, lethe.archive_jobs")
                try fixture.connection.execute(
                    "ANALYZE app.blobs, app.conversations, app.messages, app.message_attachments")

                // A part's batch: keys up to the 500th (or the last), as the packer asks for them.
                let connection = fixture.connection
                let literal = try connection.literal(id)
                #expect(!jobs.registry.blobStores.isEmpty)
                for store in jobs.registry.blobStores.values {
                    let key = store.store.key
                    let upTo: String = try connection.scalar(
                        """
                        SELECT max(blob_key) FROM (SELECT blob_key FROM lethe.archive_manifest_blobs
                        WHERE job_id = $1::uuid AND store = $2 ORDER BY blob_key LIMIT 500) AS batch
                        """, [id, store.store.name])
                    let rows = ArchiveJobs.exportBlobRowsQuery(
                        store, jobLiteral: literal, accountLiteral: try connection.literal("1"),
                        storeLiteral: try connection.literal(store.store.name),
                        range: "mb.blob_key <= \(try connection.literal(upTo))")
                    let sizes = try #require(ArchiveJobs.nextBlobContentsSQL(store))
                    let range: [any PostgresEncodable] = [id, "1", store.store.name, nil as String?, upTo]
                    for (name, sql, parameters) in [
                        ("blob rows", rows, [] as [any PostgresEncodable]),
                        (
                            "content sizes", sizes,
                            [id, "1", store.store.name, nil as String?, 500] as [any PostgresEncodable]
                        ),
                        // The hash-clearing statements of the same batch: as a plain NOT EXISTS the
                        // planner hashed every blob of the account for each batch.
                        ("forget changed blobs", ArchiveJobs.forgetChangedBlobsSQL(store), range),
                        (
                            "forget blob rows not written", ArchiveJobs.forgetBlobRowsNotWrittenSQL(store),
                            range + [[String]()]
                        ),
                    ] {
                        let shown = try plan(sql, parameters, on: connection)
                        #expect(shown.contains("Index Cond: (\(key) = (mb.blob_key)::"), "\(name):\n\(shown)")
                        for whole in ["Join Filter", "Hash", "Seq Scan on \(store.store.table.name)"] {
                            #expect(!shown.contains(whole), "\(name):\n\(shown)")
                        }
                    }
                }
                for type in jobs.types {
                    for index in type.tables.indices {
                        let upTo: String = try connection.scalar(
                            """
                            SELECT max(row_key) FROM (SELECT row_key FROM lethe.archive_manifest
                            WHERE job_id = $1::uuid AND entity_type = $2 AND table_index = $3
                            ORDER BY row_key LIMIT 500) AS batch
                            """, [id, type.name, index])
                        let shown = try plan(
                            ArchiveJobs.exportRowsQuery(
                                type, table: index, jobLiteral: literal, typeLiteral: try connection.literal(type.name),
                                range: "m.row_key <= \(try connection.literal(upTo))"),
                            on: connection)
                        // The batch's manifest range and each of its rows by key: nothing scans a table whole.
                        for whole in ["Seq Scan", "Hash Join", "Merge Join", "Join Filter"] {
                            #expect(!shown.contains(whole), "\(type.name) table \(index):\n\(shown)")
                        }
                        #expect(shown.contains("Index Cond:"), "\(type.name) table \(index):\n\(shown)")
                    }
                }
            }
        }
    }
}
