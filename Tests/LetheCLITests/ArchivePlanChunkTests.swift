import Foundation
import Postgres
import Store
import TestSupport
import Testing

@testable import LetheConfiguration

/// Planning in bounded transactions (`archive.plan_chunk_roots`): each chunk commits its
/// manifest rows and the cursor after them, so planning resumes after the last chunk that
/// committed, and rows that change between chunks are deleted only as archived.
@Suite(.serialized) struct ArchivePlanChunkTests {
    /// The fixture's registry compiled against its database, planning `chunk` roots a step.
    private func jobs(_ fixture: ArchiveFixture, chunk: Int) throws -> ArchiveJobs {
        let text = try String(contentsOfFile: fixture.configPath, encoding: .utf8)
        let registry = try Configuration.parse(text, source: fixture.configPath).registry
        return ArchiveJobs(
            registry: try RegistryCatalog.compile(registry, on: fixture.connection), maxRootsPerType: 1_000_000,
            planChunkRoots: chunk)
    }

    private func job(_ id: String, _ jobs: ArchiveJobs, _ fixture: ArchiveFixture) throws -> ArchiveJob {
        try #require(
            try jobs.openJobs(account: "1", on: fixture.connection).first { $0.id.uuidString.lowercased() == id })
    }

    private func manifest(_ id: String, _ fixture: ArchiveFixture) throws -> [String] {
        try fixture.connection.query(
            """
            SELECT entity_type || '/' || table_index || '/' || row_key || '/' || coalesce(row_hash, '-')
            FROM lethe.archive_manifest WHERE job_id = $1::uuid
            UNION ALL SELECT 'blob/' || store || '/' || blob_key || '/' || coalesce(row_hash, '-')
            FROM lethe.archive_manifest_blobs WHERE job_id = $1::uuid ORDER BY 1
            """, [id]
        ).map { try $0.decode(String.self, at: 0) }
    }

    /// Snapshots the fixture's tables, starts a job and plans it in chunks of 3 up to its first
    /// chunk of conversations (the worker, with chunks of 4, plans the rest); returns the job
    /// and that chunk's conversations, sorted.
    private func planFirstChunk(_ fixture: ArchiveFixture) throws -> (id: String, planned: [Int64]) {
        try fixture.addFileSite()
        try fixture.enableArchiving()
        try fixture.snapshot()
        let id = try fixture.startJob()
        let jobs = try jobs(fixture, chunk: 3)
        let job = try job(id, jobs, fixture)
        var step = try jobs.planStep(job, on: fixture.connection)
        while step != .chunk(type: "conversations", roots: 3) {
            guard step.continues else {
                throw TestSetupError("planning ended before a chunk of conversations")
            }
            step = try jobs.planStep(job, on: fixture.connection)
        }
        return (id, try fixture.manifestIDs(job: id, type: "conversations", index: 0).sorted())
    }

    /// Chunks of 3 roots, interrupted half-way and finished by another worker with chunks of
    /// 7, record exactly the manifest (keys, hashes, counts) one chunk of everything records.
    @Test func chunkedPlanningResumesAndRecordsWhatOneTransactionWould() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database)
            try fixture.addFileSite()
            try fixture.enableArchiving()
            let chunked = try fixture.startJob()
            let small = try jobs(fixture, chunk: 3)
            let first = try job(chunked, small, fixture)
            #expect(try small.planStep(first, on: fixture.connection) == .started)
            for _ in 0..<6 {
                #expect(try small.planStep(first, on: fixture.connection).continues)
            }
            #expect(try fixture.jobState(chunked) == "planning")
            // The worker is gone; another, with another chunk size, goes on from the cursor.
            try jobs(fixture, chunk: 7).plan(first, on: fixture.connection)
            #expect(try fixture.jobState(chunked) == "packing")
            #expect(try jobs(fixture, chunk: 7).planStep(first, on: fixture.connection) == .alreadyPlanned)
            let recorded = try manifest(chunked, fixture)
            let counts: String = try fixture.connection.scalar(
                "SELECT counts::text FROM lethe.archive_jobs WHERE job_id = $1::uuid", [chunked])
            #expect(try fixture.manifestIDs(job: chunked, type: "conversations", index: 0).count > 14)

            // The same plan in one chunk, once the chunked job no longer holds its roots.
            try fixture.connection.execute("DELETE FROM lethe.archive_jobs WHERE job_id = $1::uuid", [chunked])
            let whole = try fixture.startJob()
            let one = try jobs(fixture, chunk: 1_000_000)
            try one.plan(try job(whole, one, fixture), on: fixture.connection)
            #expect(try manifest(whole, fixture) == recorded)
            let wholeCounts: String = try fixture.connection.scalar(
                "SELECT counts::text FROM lethe.archive_jobs WHERE job_id = $1::uuid", [whole])
            #expect(wholeCounts == counts)
            // The deleted job's manifest went with it (migration 0018's trigger, which replaced
            // the foreign keys' cascade); a TRUNCATE takes every job's.
            #expect(try manifest(chunked, fixture).isEmpty)
            #expect(!(try manifest(whole, fixture).isEmpty))
            try fixture.connection.execute("TRUNCATE lethe.archive_jobs CASCADE")
            let left: Int = try fixture.connection.scalar(
                """
                SELECT ((SELECT count(*) FROM lethe.archive_manifest) + (SELECT count(*) FROM lethe.archive_manifest_blobs))::int
                """)
            #expect(left == 0)
        }
    }

    /// A message moved between chunks from a planned conversation to one planned later: its
    /// key is in the job already, so the later chunk's plain INSERT fails and the chunk goes
    /// in again skipping it. The message stays recorded under its first root with the hash it
    /// had there; now under the other root with another `conversation_id`, it matches no hash
    /// and stays, with the conversation that holds it now. Planning does not fail.
    @Test func aMessageMovedToARootOfALaterChunkIsRecordedOnceAndKept() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database, extra: "  plan_chunk_roots: 4")
            let (id, planned) = try planFirstChunk(fixture)
            let first = try #require(planned.first)
            let message: Int64 = try fixture.connection.scalar(
                "SELECT min(id) FROM app.messages WHERE conversation_id = $1", [first])
            let later: Int64 = try fixture.connection.scalar(
                """
                SELECT c.id FROM app.conversations c WHERE c.account_id = 1 AND c.ended_at < now() - interval '2 days'
                  AND c.id <> ALL($1::bigint[]) ORDER BY c.ended_at DESC, c.id DESC LIMIT 1
                """, [planned])
            try fixture.connection.execute(
                "UPDATE app.messages SET conversation_id = $2 WHERE id = $1", [message, later])

            try fixture.preApprove(id)
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(id) == "deleted", "\(fixture.diagnostics())")
            let roots = try fixture.connection.query(
                """
                SELECT root_key FROM lethe.archive_manifest
                WHERE job_id = $1::uuid AND entity_type = 'conversations' AND table_index = 1 AND row_key = $2
                """, [id, "\(message)"]
            ).map { try $0.decode(String.self, at: 0) }
            #expect(roots == ["\(first)"])
            #expect(try fixture.manifestIDs(job: id, type: "conversations", index: 0).contains(later))
            let gone = try fixture.gone(account: 1)
            #expect(!(gone["app.messages"] ?? []).contains(message), "the moved message was deleted")
            #expect(!(gone["app.conversations"] ?? []).contains(later), "the root now holding it was deleted")
            #expect((gone["app.conversations"] ?? []).count > 10, "\(gone)")
        }
    }

    /// Rows edited between two planning chunks: a root and a message of roots planned before
    /// the edit are spared (their hashes no longer match), a root planned after its edit is
    /// archived as edited and deleted. The rest of the plan is finished by `lethe run`, itself
    /// in chunks, resuming from the cursor.
    @Test func aRowChangedBetweenChunksIsDeletedOnlyAsArchived() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database, extra: "  plan_chunk_roots: 4")
            let (id, planned) = try planFirstChunk(fixture)
            #expect(planned.count == 3)
            let (edited, withEditedMessage) = (planned[0], planned[1])
            try fixture.connection.execute(
                "UPDATE app.conversations SET channel = channel || '-edited' WHERE id = $1", [edited])
            let message: Int64 = try fixture.connection.scalar(
                "SELECT min(id) FROM app.messages WHERE conversation_id = $1", [withEditedMessage])
            try fixture.connection.execute(
                "UPDATE app.messages SET body = body || ' (edited)' WHERE id = $1", [message])
            // An expired conversation no chunk has reached yet, edited before its chunk.
            let later: Int64 = try fixture.connection.scalar(
                """
                SELECT c.id FROM app.conversations c WHERE c.account_id = 1 AND c.ended_at < now() - interval '2 days'
                  AND c.id <> ALL($1::bigint[]) ORDER BY c.ended_at DESC, c.id DESC LIMIT 1
                """, [planned])
            try fixture.connection.execute(
                "UPDATE app.conversations SET channel = channel || '-edited' WHERE id = $1", [later])
            let laterHash: String = try fixture.connection.scalar(
                "SELECT md5(row_to_json(c)::text) FROM app.conversations c WHERE id = $1", [later])

            try fixture.preApprove(id)
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(id) == "deleted", "\(fixture.diagnostics())")
            let unfinished: Int = try fixture.connection.scalar(
                """
                SELECT count(*)::int FROM lethe.archive_jobs j, jsonb_each(j.plan_progress) p
                WHERE j.job_id = $1::uuid AND NOT (p.value ->> 'done')::boolean
                """, [id])
            #expect(unfinished == 0)
            let gone = try fixture.gone(account: 1)
            let goneConversations = Set(gone["app.conversations"] ?? [])
            #expect(goneConversations.count > 10, "\(gone)")
            #expect(!goneConversations.contains(edited), "a root edited after its chunk was deleted")
            #expect(!goneConversations.contains(withEditedMessage), "a root whose message was edited was deleted")
            #expect(!(gone["app.messages"] ?? []).contains(message))
            #expect(goneConversations.contains(later), "a root edited before its chunk was not archived as it is")
            let recordedHash: String? = try fixture.connection.scalar(
                """
                SELECT row_hash FROM lethe.archive_manifest
                WHERE job_id = $1::uuid AND entity_type = 'conversations' AND table_index = 0 AND row_key = $2
                """, [id, "\(later)"])
            #expect(recordedHash == laterHash)
            #expect(try fixture.gone(account: 2).isEmpty)
        }
    }
}
