import Foundation
import Postgres
import TestSupport
import Testing

/// A row that arrives under an archived root while its deletion batch runs (after the batch
/// checked for changes, before it deletes): it was never archived, so it must survive, and
/// so must every row it depends on.
@Suite struct ArchiveDeletionRaceTests {
    @Test func aChildInsertedDuringTheDeletionBatchSurvivesWithItsParent() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database)
            try fixture.addFileSite()
            try fixture.enableArchiving()
            try fixture.snapshot()
            let job = try fixture.startJob()
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(job) == "uploaded")

            // The batch deletes attachments, then messages, then conversations, in separate
            // statements. A trigger after the attachments' statement inserts a message under an
            // archived conversation whose messages have attachments: the insert another session
            // could commit between two statements of the batch's READ COMMITTED transaction.
            let target: Int64 = try fixture.connection.scalar(
                """
                SELECT min(m.conversation_id) FROM app.messages m JOIN app.message_attachments a ON a.message_id = m.id
                WHERE m.conversation_id IN (SELECT row_key::bigint FROM lethe.archive_manifest
                                            WHERE job_id = $1::uuid AND entity_type = 'conversations' AND table_index = 0)
                """, [job])
            try fixture.connection.executeScript(
                """
                CREATE FUNCTION public.late_message() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    INSERT INTO app.messages (conversation_id, account_id, sent_at, body)
                    SELECT \(target), 1, now(), 'arrived during the deletion batch'
                    WHERE NOT EXISTS (SELECT 1 FROM app.messages WHERE body = 'arrived during the deletion batch');
                    RETURN NULL;
                END $$;
                CREATE TRIGGER late_message AFTER DELETE ON app.message_attachments
                    FOR EACH STATEMENT EXECUTE FUNCTION public.late_message();
                """)
            let file = try #require(try fixture.files(job: job).first)
            try fixture.expectSuccess(["archive", "approve", "\(file.id)"])
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(job) == "deleted")

            // The late message and its conversation are there; the conversation's archived
            // messages and attachments went (they are in the archive).
            let late: Int = try fixture.connection.scalar(
                "SELECT count(*)::int FROM app.messages WHERE body = 'arrived during the deletion batch' AND conversation_id = $1",
                [target])
            #expect(late == 1, "the message inserted during the batch was deleted without being archived")
            #expect(
                try fixture.connection.scalar("SELECT count(*) FROM app.conversations WHERE id = $1", [target]) == 1)
            let archivedMessages = try fixture.connection.scalar(
                """
                SELECT count(*) FROM app.messages
                WHERE conversation_id = $1 AND id::text IN (SELECT row_key FROM lethe.archive_manifest
                                                            WHERE job_id = $2::uuid AND table_index = 1)
                """, [target, job], as: Int.self)
            #expect(archivedMessages == 0)

            // Every other archived conversation went, and only archived rows went.
            let gone = try fixture.gone(account: 1)
            let conversations = try fixture.manifestIDs(job: job, type: "conversations", index: 0)
            #expect(Set(gone["app.conversations"] ?? []) == conversations.subtracting([target]))
            #expect(
                Set(gone["app.messages"] ?? []).isSubset(
                    of: try fixture.manifestIDs(job: job, type: "conversations", index: 1)))
        }
    }
}
