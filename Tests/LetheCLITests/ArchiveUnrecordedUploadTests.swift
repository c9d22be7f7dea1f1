import Foundation
import Postgres
import Store
import TestSupport
import Testing

/// An upload renames its file into place on the site and then records it; a crash in between
/// leaves a file on the site the database does not know about. Were the spool then lost and
/// the job packed again under the same names, the new file (other bytes, same size: the same
/// rows, another AES salt) would find the old one there and count as uploaded: the backup log
/// would vouch for bytes no site holds.
@Suite(.serialized) struct ArchiveUnrecordedUploadTests {
    /// Uploaded, then the uploads' records lost while their files stay on the site, and the
    /// spool gone: as after a crash between an upload's rename and its record, on another host.
    private static func loseRecordsAndSpool(
        _ fixture: ArchiveFixture, job id: String
    ) throws
        -> [(id: Int64, name: String, status: String, size: Int64?, sha256: String?)]
    {
        try fixture.runUntilIdle()  // packed and uploaded; deletion not approved
        #expect(try fixture.jobState(id) == "uploaded", "\(fixture.diagnostics())")
        let first = try fixture.files(job: id)
        #expect(!first.isEmpty)
        let connection = fixture.connection
        let jobs = try fixture.archiveJobs()
        let job = try fixture.openJob(id, of: jobs)
        let site: Int64 = try connection.scalar(
            "SELECT site_id FROM lethe.backup_sites WHERE account_id = '1' AND removed_at IS NULL")
        #expect(try jobs.reupload(job, missing: first.map { ($0.id, site) }, on: connection))
        try connection.execute("UPDATE lethe.archive_jobs SET wake_at = now() WHERE job_id = $1::uuid", [id])
        try FileManager.default.removeItem(atPath: fixture.directory.appendingPathComponent("spool").path)
        return first
    }

    private static func generation(_ fixture: ArchiveFixture, job id: String) throws -> Int {
        try fixture.connection.scalar("SELECT generation FROM lethe.archive_jobs WHERE job_id = $1::uuid", [id])
    }

    /// While a site does not answer, nothing could be uploaded anyway: the job waits instead of
    /// adding a generation at every retry.
    @Test func aSiteThatDoesNotAnswerAddsNoGeneration() async throws {
        try await ArchiveFixture.withArchivingAccount { fixture in
            let id = try fixture.startJob()
            _ = try Self.loseRecordsAndSpool(fixture, job: id)
            let away = fixture.siteDirectory + ".away"
            try FileManager.default.moveItem(atPath: fixture.siteDirectory, toPath: away)
            _ = try fixture.lethe(["run", "--until-idle", "--log-level", "debug"])
            #expect(try Self.generation(fixture, job: id) == 1, "\(fixture.diagnostics())")
            #expect(try fixture.jobState(id) == "uploading")

            try FileManager.default.moveItem(atPath: away, toPath: fixture.siteDirectory)
            try fixture.connection.execute(
                "UPDATE lethe.archive_jobs SET wake_at = now() WHERE job_id = $1::uuid", [id])
            try fixture.connection.execute(
                "UPDATE lethe.tasks SET run_at = now() WHERE kind = 'archive' AND state IN ('available', 'failed')")
            try fixture.runUntilIdle()
            #expect(try Self.generation(fixture, job: id) == 2, "\(fixture.diagnostics())")
            #expect(try fixture.jobState(id) == "uploaded")
        }
    }

    @Test func aSpoolLostBeforeAnyRecordedUploadIsPackedAgainUnderNewNames() async throws {
        try await ArchiveFixture.withArchivingAccount { fixture in
            let id = try fixture.startJob()
            let first = try Self.loseRecordsAndSpool(fixture, job: id)
            let connection = fixture.connection

            try fixture.runUntilIdle()
            #expect(try fixture.jobState(id) == "uploaded", "\(fixture.diagnostics())")
            let (generation, note): (Int, String?) = try connection.query(
                "SELECT generation, note FROM lethe.archive_jobs WHERE job_id = $1::uuid", [id]
            )[0].decode((Int, String?).self)
            #expect(generation == 2, "packed again as the next generation: \(note ?? "")")
            let current = try connection.query(
                """
                SELECT f.file_name, f.sha256 FROM lethe.archive_files f JOIN lethe.archive_jobs j USING (job_id)
                WHERE f.job_id = $1::uuid AND f.generation = j.generation ORDER BY f.part
                """, [id]
            ).map { try $0.decode((String, String).self) }
            #expect(!current.isEmpty)
            #expect(Set(current.map(\.0)).isDisjoint(with: first.map(\.name)), "new names")
            for (name, sha) in current {
                // What the backup log vouches for is what the site holds, byte for byte.
                #expect(try sha256(of: "\(fixture.siteDirectory)/\(name)") == sha, "\(name)")
            }
            for file in first {
                #expect(
                    !FileManager.default.fileExists(atPath: "\(fixture.siteDirectory)/\(file.name)"),
                    "superseded \(file.name) removed from the site once generation 2 is there")
            }
        }
    }
}
