import Foundation
import Postgres
import Retention
import Store
import TestSupport
import Testing

@testable import LetheConfiguration

/// The packer's export statements after autovacuum has analysed a fresh manifest, with
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

    /// The SELECT inside a `COPY (…) TO STDOUT …` statement.
    private func innerQuery(_ copy: String) throws -> String {
        let start = try #require(copy.range(of: "COPY ("))
        let end = try #require(copy.range(of: "TO STDOUT", options: .backwards))
        let inner = copy[start.upperBound..<end.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)
        return String(inner.dropLast())  // the closing parenthesis
    }

    @Test func exportStatementsLookRowsUpByKeyAfterAnAnalyse() async throws {
        try await withMigratedDatabase { database in
            try await offThePool {
                let fixture = try ArchiveFixture(database: database, scale: 1500)
                try fixture.addFileSite()
                try fixture.enableArchiving()
                let id = try fixture.startJob()
                let text = try String(contentsOfFile: fixture.configPath, encoding: .utf8)
                let registry = try Configuration.parse(text, source: fixture.configPath).registry
                let jobs = ArchiveJobs(
                    registry: try RegistryCatalog.compile(registry, on: fixture.connection), maxRootsPerType: 1_000_000)
                let job = try #require(
                    try jobs.openJobs(account: "1", on: fixture.connection).first {
                        $0.id.uuidString.lowercased() == id
                    })
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

                let literal = try fixture.connection.literal(id)
                #expect(!jobs.registry.blobStores.isEmpty)
                for store in jobs.registry.blobStores.values {
                    let key = store.store.key
                    for (name, sql, parameters) in [
                        ("blob rows", store.exportRowsQuery(jobLiteral: literal), [] as [any PostgresEncodable]),
                        ("content sizes", try #require(store.contentSizes), [id] as [any PostgresEncodable]),
                    ] {
                        let shown = try plan(sql, parameters, on: fixture.connection)
                        #expect(shown.contains("Index Cond: (\(key) = (mb.blob_key)::"), "\(name):\n\(shown)")
                        #expect(!shown.contains("Join Filter"), "\(name):\n\(shown)")
                    }
                }
                for type in jobs.types {
                    for index in type.tables.indices {
                        let shown = try plan(
                            try innerQuery(type.exportRows(index, jobLiteral: literal)), on: fixture.connection)
                        #expect(shown.contains("Index Cond:"), "\(type.name) table \(index):\n\(shown)")
                        #expect(!shown.contains("Join Filter"), "\(type.name) table \(index):\n\(shown)")
                    }
                }
            }
        }
    }
}
