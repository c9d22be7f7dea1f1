import Foundation
import Postgres
import Retention
import Store
import TestSupport
import Testing
import Worker

@testable import LetheConfiguration

/// Packing driven part by part in the test's process, as the worker's pack step does, with
/// changes between parts that a worker's timing would make rare: each leaves a hash only on
/// what the parts wrote exactly as it is now.
@Suite struct ArchivePartSteppingTests {
    /// Packs the next part of `job` as `ArchiveHandler.pack` does, in one REPEATABLE READ transaction.
    static func packPart(
        _ job: ArchiveJob, jobs: ArchiveJobs, splitSize: Int64, _ fixture: ArchiveFixture
    ) throws -> ArchivePacker.Part {
        let packer = ArchivePacker(
            jobs: jobs,
            settings: ArchiveOptions(
                spoolDirectory: fixture.directory.appendingPathComponent("spool").path, splitSize: splitSize))
        try jobs.beginPart(job, on: fixture.connection)
        return try fixture.connection.withTransaction(.repeatableRead) { connection in
            let cursor = try jobs.lockForPacking(job, on: connection)
            let part = try packer.packPart(job, passphrase: ArchiveFixture.archiveKey, cursor: cursor, on: connection)
            try jobs.recordPart(job, file: part.file, next: part.next, on: connection)
            return part
        }
    }

    /// A job of account 1, planned in process (state `packing`). Its first blob in key order
    /// (id 0) holds 1.6 MB of random bytes, so a part of 1 byte ends after it, inside the
    /// store's contents (the writer's output reaches the disk in blocks).
    static func plannedJob(_ fixture: ArchiveFixture) throws -> (String, ArchiveJob, ArchiveJobs) {
        try fixture.connection.executeScript(
            """
            INSERT INTO app.blobs (id, account_id, kind, byte_size, content, created_at)
            SELECT 0, 1, 'recording', 1600000, decode(string_agg(md5(random()::text), ''), 'hex'),
                   now() - interval '400 days'
            FROM generate_series(1, 100000);
            INSERT INTO app.conversations (account_id, channel, started_at, ended_at, recording_blob_id)
            VALUES (1, 'voice', now() - interval '401 days', now() - interval '400 days', 0);
            """)
        try fixture.addFileSite()
        try fixture.enableArchiving()
        let id = try fixture.startJob()
        let jobs = try fixture.archiveJobs()
        try jobs.plan(try fixture.openJob(id, of: jobs), on: fixture.connection)
        return (id, try fixture.openJob(id, of: jobs), jobs)
    }

    /// An entity type dropped from the registry between two parts: the rest of the job packs
    /// again from part 1 under the new registry, and the dropped type keeps no hash, so
    /// putting it back before deletion cannot delete rows no part archived.
    @Test func aTypeDroppedBetweenPartsKeepsNoHash() async throws {
        try await withMigratedDatabase { database in
            try await offThePool {
                let fixture = try ArchiveFixture(database: database)
                let (id, job, jobs) = try Self.plannedJob(fixture)
                let hashed = { (type: String) throws -> Int in
                    try fixture.connection.scalar(
                        """
                        SELECT count(*)::int FROM lethe.archive_manifest
                        WHERE job_id = $1::uuid AND entity_type = $2 AND row_hash IS NOT NULL
                        """, [id, type])
                }
                #expect(try hashed("audit_log") > 0)
                let first = try Self.packPart(job, jobs: jobs, splitSize: 1, fixture)
                #expect(first.next != nil)

                let text = try String(contentsOfFile: fixture.configPath, encoding: .utf8)
                var registry = try Configuration.parse(text, source: fixture.configPath).registry
                registry.entityTypes.removeAll { $0.name == "audit_log" }
                let without = ArchiveJobs(
                    registry: try RegistryCatalog.compile(registry, on: fixture.connection), maxRootsPerType: 1_000_000)
                var restarted = false
                var parts = 1
                while true {
                    let part = try Self.packPart(job, jobs: without, splitSize: 1 << 20, fixture)
                    restarted = restarted || part.restarted
                    parts += 1
                    if part.next == nil { break }
                    try #require(parts < 100, "packing does not end")
                }
                #expect(restarted, "the parts cut under the old registry were kept")
                #expect(try hashed("audit_log") == 0, "the dropped type kept hashes no part archived")
                #expect(try hashed("conversations") > 0)
                #expect(try fixture.jobState(id) == "uploading")
            }
        }
    }
}
