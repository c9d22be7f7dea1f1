import Foundation
import Postgres
import Store
import TestSupport
import Testing

/// Attacks on archive generations (docs/archives.md "Packing again after a loss"): the files
/// of a superseded generation may leave the sites only while the rows they hold are still in
/// the database, for the next generation to hold them instead.
@Suite(.serialized) struct ArchiveGenerationAttackTests {
    /// Deletion of generation 1 began (a batch deleted conversations, naming part 1 in the
    /// deletion log), then a hold paused it. Meanwhile part 2 is lost everywhere: the job is
    /// packed again as generation 2, which cannot hold the rows already deleted. The files of
    /// generation 1 are then the only copies of those rows: they must stay on the site.
    @Test func filesOfAGenerationThatDeletedRowsAreNeverRemoved() async throws {
        try await withMigratedDatabase { database in
            try await offThePool {
                let fixture = try ArchiveFixture(database: database, extra: "  split_size: 1MiB")
                try fixture.fillBlobs()
                try fixture.addFileSite()
                try fixture.enableArchiving()
                try fixture.snapshot()
                let id = try fixture.startJob()
                try fixture.runUntilIdle()  // not approved: waits, uploaded
                #expect(try fixture.jobState(id) == "uploaded", "\(fixture.diagnostics())")
                let first = try fixture.files(job: id)
                #expect(first.count >= 2, "split at 1 MiB: \(first)")
                let part1 = try #require(first.first)
                let part2 = try #require(first.dropFirst().first)

                // Deletion begins: one batch of conversations goes, then a hold pauses it.
                let jobs = try fixture.archiveJobs()
                let job = try #require(try fixture.openJob(id, jobs))
                let conversations = try #require(jobs.types.first { $0.name == "conversations" })
                try jobs.beginDeletion(job, on: fixture.connection)
                let batch = try jobs.deleteBatch(
                    job, type: conversations, after: nil, archive: part1.id, task: nil, worker: nil,
                    on: fixture.connection)
                #expect(batch.result.totalRows > 0)
                try jobs.pauseDeletion(job, note: "deletion stopped: held", on: fixture.connection)
                let deletedFirst = try fixture.gone(account: 1)
                #expect(!(deletedFirst["app.conversations"] ?? []).isEmpty)

                // Part 2 is lost on the site and in the spool; the hold is lifted, deletion approved.
                try FileManager.default.removeItem(atPath: "\(fixture.siteDirectory)/\(part2.name)")
                try FileManager.default.removeItem(atPath: fixture.directory.appendingPathComponent("spool").path)
                _ = try fixture.connection.query("SELECT lethe.approve_archive_deletion($1)", [part1.id])
                _ = try fixture.lethe(["run", "--until-idle", "--log-level", "debug"])
                let generation: Int = try fixture.connection.scalar(
                    "SELECT generation FROM lethe.archive_jobs WHERE job_id = $1::uuid", [id])
                #expect(generation == 2, "\(fixture.diagnostics())")

                // Every file that deletions name (and the rest of its generation) is still on the site.
                let named = try fixture.connection.query(
                    """
                    SELECT DISTINCT g.file_name, g.total_size, g.removed_at IS NOT NULL
                    FROM lethe.deletion_records d JOIN lethe.archive_files f ON f.id = d.archive_id
                    JOIN lethe.archive_files g ON g.job_id = f.job_id AND g.generation = f.generation
                    WHERE d.account_id = '1' AND g.file_name <> $1
                    """, [part2.name]
                ).map { try $0.decode((String, Int64?, Bool).self) }
                #expect(named.contains { $0.0 == part1.name })
                for (name, size, removed) in named {
                    #expect(!removed, "\(name) is recorded as removed though deleted rows live only there")
                    #expect(
                        fileSize("\(fixture.siteDirectory)/\(name)") == size,
                        "\(name), which holds deleted rows, left the site")
                }
                #expect(try fixture.gone(account: 2).isEmpty)
            }
        }
    }
}
