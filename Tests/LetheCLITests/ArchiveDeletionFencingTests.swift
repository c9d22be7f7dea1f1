import Foundation
import Postgres
import Store
import TestSupport
import Testing

/// A deletion batch is walked once. A worker that lost its lease may still run the batch it
/// had begun after another worker committed it; meanwhile a row the first commit deleted may
/// be back, identical (a restore, an application re-creating it), and it matches its
/// archived hash. The stale batch must keep nothing it did.
@Suite(.serialized) struct ArchiveDeletionFencingTests {
    @Test func aBatchAnotherWorkerCommittedRollsBackWhole() async throws {
        try await ArchiveFixture.withArchivingAccount { fixture in
            try fixture.snapshot()
            let id = try fixture.startJob()
            try fixture.runUntilIdle()  // not approved: waits, uploaded
            #expect(try fixture.jobState(id) == "uploaded", "\(fixture.diagnostics())")
            let part1 = try #require(try fixture.files(job: id).first)
            let connection = fixture.connection

            // A conversation of the job without a recording, as it is before deletion.
            let conversation: Int64 = try connection.scalar(
                """
                SELECT c.id FROM app.conversations c
                JOIN lethe.archive_manifest m ON m.row_key = c.id::text AND m.table_index = 0
                WHERE m.job_id = $1::uuid AND c.recording_blob_id IS NULL ORDER BY c.id LIMIT 1
                """, [id])
            let row: String = try connection.scalar(
                "SELECT row_to_json(c)::text FROM app.conversations c WHERE c.id = $1", [conversation])

            let jobs = try fixture.archiveJobs()
            let job = try fixture.openJob(id, of: jobs)
            let conversations = try #require(jobs.types.first { $0.name == "conversations" })
            try jobs.beginDeletion(job, on: connection)
            // Worker B's batch after the start commits.
            let batch = try jobs.deleteBatch(
                job, type: conversations, after: nil, archive: part1.id, task: nil, worker: nil, on: connection)
            #expect(batch.result.totalRows > 0)
            #expect(
                try connection.scalar("SELECT count(*) FROM app.conversations WHERE id = $1", [conversation]) == 0)
            let gone = try fixture.gone(account: 1)

            // The conversation is back, identical; worker A, whose lease ran out, walks the same batch.
            try connection.execute(
                "INSERT INTO app.conversations SELECT * FROM json_populate_record(NULL::app.conversations, $1::json)",
                [row])
            #expect(throws: ArchiveDeletionMoved.self) {
                try jobs.deleteBatch(
                    job, type: conversations, after: nil, archive: part1.id, task: nil, worker: nil,
                    on: connection)
            }
            #expect(
                try connection.scalar("SELECT count(*) FROM app.conversations WHERE id = $1", [conversation]) == 1,
                "the stale batch deleted the conversation put back")
            var now = try fixture.gone(account: 1)
            now["app.conversations"] = now["app.conversations"].map { $0 + [conversation] }
            #expect(now.mapValues { Set($0) } == gone.mapValues { Set($0) }, "the stale batch kept nothing")
            let records: Int = try connection.scalar(
                "SELECT count(*)::int FROM lethe.deletion_records WHERE account_id = '1'")
            #expect(records == 1, "one batch recorded, not two")

            // The blob stores' batches go through the same fence.
            let store = try #require(jobs.registry.blobStores.values.first)
            let blobs = try jobs.deleteBlobBatch(
                job, store: store, after: nil, archive: part1.id, task: nil, worker: nil, on: connection)
            #expect(blobs.stopped == nil)
            let blobsLeft: Int = try connection.scalar("SELECT count(*)::int FROM app.blobs WHERE account_id = 1")
            #expect(throws: ArchiveDeletionMoved.self) {
                try jobs.deleteBlobBatch(
                    job, store: store, after: nil, archive: part1.id, task: nil, worker: nil, on: connection)
            }
            #expect(try connection.scalar("SELECT count(*)::int FROM app.blobs WHERE account_id = 1") == blobsLeft)
        }
    }

    /// A worker that lost its lease may pause (a hold it saw) a job another worker has just
    /// finished deleting, or finish one another paused: the job and its files change together,
    /// and only from the state their event leaves.
    @Test func aStalePauseOrFinishChangesNeitherTheJobNorItsFiles() async throws {
        try await ArchiveFixture.withArchivingAccount { fixture in
            let id = try fixture.startJob()
            try fixture.runUntilIdle()  // not approved: waits, uploaded
            let jobs = try fixture.archiveJobs()
            let job = try fixture.openJob(id, of: jobs)
            let connection = fixture.connection
            func statuses() throws -> Set<String> {
                Set(
                    try connection.query(
                        "SELECT status FROM lethe.archive_files WHERE job_id = $1::uuid", [id]
                    ).map { try $0.decode(String.self, at: 0) })
            }
            #expect(try statuses() == ["uploaded"])
            // Finishing a job that is not deleting (paused, or never begun) changes nothing.
            #expect(try jobs.recordDeleted(job, on: connection) == nil)
            #expect(try fixture.jobState(id) == "uploaded" && statuses() == ["uploaded"])

            try jobs.beginDeletion(job, on: connection)
            #expect(try jobs.recordDeleted(job, on: connection) == nil)  // nothing spared: no note
            #expect(try fixture.jobState(id) == "deleted" && statuses() == ["deleted"])
            // A stale pause of the finished job changes nothing.
            #expect(try !jobs.pauseDeletion(job, note: "deletion stopped: held", on: connection))
            #expect(try fixture.jobState(id) == "deleted" && statuses() == ["deleted"])
        }
    }

    /// A site check that found a file missing sends an `uploaded` job back to uploading and
    /// forgets that copy, all at once; the same finding from a worker that lost its lease
    /// while another began the deletion (having checked every site itself) changes nothing:
    /// on the old code the deleting job went back to uploading in the middle of its deletion.
    @Test func aStaleSiteCheckDoesNotSendADeletingJobBack() async throws {
        try await ArchiveFixture.withArchivingAccount { fixture in
            let id = try fixture.startJob()
            try fixture.runUntilIdle()  // not approved: waits, uploaded
            let jobs = try fixture.archiveJobs()
            let connection = fixture.connection
            let file = try #require(try fixture.files(job: id).first)
            func uploads() throws -> [Int64] {
                try connection.query(
                    "SELECT site_id FROM lethe.archive_uploads WHERE file_id = $1 ORDER BY site_id", [file.id]
                ).map { try $0.decode(Int64.self, at: 0) }
            }
            func statuses() throws -> Set<String> {
                Set(
                    try connection.query(
                        "SELECT status FROM lethe.archive_files WHERE job_id = $1::uuid", [id]
                    ).map { try $0.decode(String.self, at: 0) })
            }
            let site = try #require(try uploads().first)

            // Found missing while the job waits, uploaded: back to uploading, that copy forgotten.
            #expect(try jobs.reupload(try fixture.openJob(id, of: jobs), missing: [(file.id, site)], on: connection))
            #expect(try fixture.jobState(id) == "uploading" && statuses() == ["uploading"])
            #expect(try !uploads().contains(site))
            try connection.execute("UPDATE lethe.archive_jobs SET wake_at = now() WHERE job_id = $1::uuid", [id])
            try fixture.runUntilIdle()  // uploaded again
            #expect(try fixture.jobState(id) == "uploaded", "\(fixture.diagnostics())")
            #expect(try uploads().contains(site))

            // Another worker begins the deletion; the stale finding changes nothing.
            let job = try fixture.openJob(id, of: jobs)
            try jobs.beginDeletion(job, on: connection)
            let before = (try statuses(), try uploads())
            #expect(try !jobs.reupload(job, missing: [(file.id, site)], on: connection))
            #expect(try fixture.jobState(id) == "deleting")
            #expect(try statuses() == before.0 && uploads() == before.1)
        }
    }
}
