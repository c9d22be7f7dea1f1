import Foundation
import Postgres
import TestSupport
import Testing

/// What one archive job takes and what its deletion may touch.
@Suite struct ArchiveManifestTests {
    /// `archive.max_roots_per_type` bounds the expired roots of a deleting type per job;
    /// keep-only types are archived whole every time, their newest rows included.
    @Test func theRootLimitBoundsExpiredRootsButKeepOnlyTypesGoWhole() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database, extra: "  max_roots_per_type: 5")
            try fixture.addFileSite()
            try fixture.enableArchiving()
            let job = try fixture.startJob()
            try fixture.runUntilIdle()
            #expect(try fixture.manifestIDs(job: job, type: "conversations", index: 0).count == 5)
            for (type, table) in [("staff", "app.staff"), ("external_contacts", "app.external_contacts")] {
                let rows = Set(
                    try fixture.connection.query("SELECT id FROM \(table) WHERE account_id = 1").map {
                        try $0.decode(Int64.self, at: 0)
                    })
                #expect(rows.count > 5)
                #expect(try fixture.manifestIDs(job: job, type: type, index: 0) == rows, "\(type)")
            }
        }
    }

    /// A deletion that yields after every batch (a 1 ms task budget, 10 roots a batch)
    /// resumes after the last batch that committed: the roots it spared are counted once.
    @Test func aYieldingDeletionResumesWhereItStopped() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database) { config in
                config.replacingOccurrences(
                    of: "worker: { poll_interval", with: "worker: { task_budget: 1ms, poll_interval"
                )
                .replacingOccurrences(
                    of: "clock: ended_at\n    interval: { default: 1y, min: 1d, max: 3y }\n    batch_size: 1000",
                    with: "clock: ended_at\n    interval: { default: 1y, min: 1d, max: 3y }\n    batch_size: 10")
            }
            try fixture.addFileSite()
            try fixture.enableArchiving()
            try fixture.snapshot()
            let job = try fixture.startJob()
            try fixture.runUntilIdle()
            // The two oldest archived conversations get a new message: both are spared.
            let touched = try fixture.manifestIDs(job: job, type: "conversations", index: 0).sorted().prefix(2)
            for id in touched {
                try fixture.connection.execute(
                    """
                    INSERT INTO app.messages (account_id, conversation_id, body, sent_at)
                    SELECT account_id, id, 'written after the archive', ended_at FROM app.conversations WHERE id = $1
                    """, [id])
            }
            let file = try #require(try fixture.files(job: job).first)
            try fixture.expectSuccess(["archive", "approve", "\(file.id)"])
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(job) == "deleted", "\(fixture.diagnostics())")
            let batches: Int = try fixture.connection.scalar(
                "SELECT count(*)::int FROM lethe.deletion_records WHERE account_id = '1' AND entity_type = 'conversations'"
            )
            let archived = try fixture.manifestIDs(job: job, type: "conversations", index: 0)
            #expect(
                archived.count > 50 && batches >= archived.count / 10, "\(batches) batches for \(archived.count) roots")
            #expect(Set(try fixture.gone(account: 1)["app.conversations"] ?? []) == archived.subtracting(touched))
            let note: String? = try fixture.connection.scalar(
                "SELECT note FROM lethe.archive_jobs WHERE job_id = $1::uuid", [job])
            #expect(note?.hasPrefix("kept 2 root rows") == true, "\(note ?? "-")")
            let yields: Int = try fixture.connection.scalar(
                "SELECT max(yields)::int FROM lethe.tasks WHERE kind = 'archive'")
            #expect(yields >= 10, "the deletion yielded \(yields) times")
        }
    }

    /// A row that arrives under an archived root while its deletion batch runs (after the
    /// batch checked for changes, before it deletes) was never archived: it must survive, and
    /// so must every row it depends on.
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
            #expect(try fixture.jobState(job) == "deleted", "\(fixture.diagnostics())")

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

    /// A row and a blob edited after the plan recorded their hashes, before the packing read
    /// them: the archive leaves them out, their manifest rows lose their hash, and neither they
    /// nor their conversations are deleted. Everything else of the job is archived and deleted.
    @Test func aRowEditedBetweenPlanAndPackStaysOutOfTheArchiveAndInTheDatabase() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database)
            try fixture.addFileSite()
            try fixture.enableArchiving()
            try fixture.snapshot()
            let (message, conversation): (Int64, Int64) = try fixture.connection.query(
                """
                SELECT m.id, m.conversation_id FROM app.messages m JOIN app.conversations c ON c.id = m.conversation_id
                WHERE c.account_id = 1 ORDER BY c.ended_at, m.id LIMIT 1
                """)[0].decode((Int64, Int64).self)
            let (blob, recorded): (Int64, Int64) = try fixture.connection.query(
                """
                SELECT recording_blob_id, id FROM app.conversations WHERE account_id = 1 AND recording_blob_id IS NOT NULL
                ORDER BY ended_at, id LIMIT 1
                """)[0].decode((Int64, Int64).self)
            // After each statement that records manifest rows (the plan's transaction, once the
            // messages' hashes are in): the edit a session could commit before the packing starts.
            try fixture.connection.executeScript(
                """
                CREATE FUNCTION public.edit_after_plan() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF EXISTS (SELECT 1 FROM lethe.archive_manifest WHERE table_index = 1 AND row_key = '\(message)') THEN
                        UPDATE app.messages SET body = 'edited after the plan' WHERE id = \(message);
                        UPDATE app.blobs SET created_at = timestamptz '2001-01-01' WHERE id = \(blob);
                    END IF;
                    RETURN NULL;
                END $$;
                CREATE TRIGGER edit_after_plan AFTER INSERT ON lethe.archive_manifest
                    FOR EACH STATEMENT EXECUTE FUNCTION public.edit_after_plan();
                """)
            let job = try fixture.startJob()
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(job) == "uploaded")
            #expect(try fixture.manifestIDs(job: job, type: "conversations", index: 1).contains(message))
            let hash: String? = try fixture.connection.scalar(
                "SELECT row_hash FROM lethe.archive_manifest WHERE job_id = $1::uuid AND table_index = 1 AND row_key = $2",
                [job, "\(message)"])
            #expect(hash == nil, "the edited message kept the hash of what the plan saw")
            #expect(try fixture.blobHash(job: job, blob: blob) == .some(nil), "the edited blob kept the plan's hash")

            // The archive's messages: every other message of the manifest, not the edited one.
            let target = try fixture.extract(job: job)
            let entries = try FileManager.default.contentsOfDirectory(atPath: "\(target)/records/conversations")
            let messagesEntry = try #require(entries.first { $0.hasPrefix("1-") })
            /// The `id` of every JSON line of an extracted records entry.
            func ids(_ entry: String) throws -> Set<Int64> {
                Set(
                    try String(contentsOfFile: "\(target)/records/\(entry)", encoding: .utf8).split(separator: "\n")
                        .map { line in
                            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                            return try #require((object?["id"] as? NSNumber)?.int64Value)
                        })
            }
            #expect(
                try ids("conversations/\(messagesEntry)")
                    == (try fixture.manifestIDs(job: job, type: "conversations", index: 1)).subtracting([message]))
            let blobIDs = try ids("_blobs/blobs.jsonl")
            #expect(!blobIDs.isEmpty && !blobIDs.contains(blob), "the edited blob's row was archived")
            // A blob row holds every column; its content is null (the bytes are a file of their own).
            let blobLine = try String(contentsOfFile: "\(target)/records/_blobs/blobs.jsonl", encoding: .utf8)
                .split(separator: "\n")[0]
            let blobRow = try #require(try JSONSerialization.jsonObject(with: Data(blobLine.utf8)) as? [String: Any])
            #expect(
                blobRow["content"] is NSNull && blobRow["kind"] is String && blobRow["byte_size"] != nil, "\(blobLine)")
            #expect(!FileManager.default.fileExists(atPath: "\(target)/blobs/blobs/\(blob)"))

            try fixture.connection.execute("DROP TRIGGER edit_after_plan ON lethe.archive_manifest")
            let file = try #require(try fixture.files(job: job).first)
            try fixture.expectSuccess(["archive", "approve", "\(file.id)"])
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(job) == "deleted", "\(fixture.diagnostics())")
            let body: String? = try fixture.connection.scalar("SELECT body FROM app.messages WHERE id = $1", [message])
            #expect(body == "edited after the plan")
            #expect(try fixture.connection.scalar("SELECT count(*) FROM app.blobs WHERE id = $1", [blob]) == 1)
            let gone = try fixture.gone(account: 1)
            let conversations = try fixture.manifestIDs(job: job, type: "conversations", index: 0)
            #expect(conversations.contains(recorded))
            #expect(Set(gone["app.conversations"] ?? []) == conversations.subtracting([conversation, recorded]))
        }
    }

    /// A blob hashes as its row without the content plus the content's own md5: a change to
    /// its bytes alone between plan and pack keeps it out of the archive and in the database,
    /// and the conversation holding it stays. A conversation of account 1 that points at a
    /// blob of account 2 gets no hash for it (the outer join found no blob of account 1): that
    /// blob is never archived or deleted with account 1's data.
    @Test func aBlobWhoseBytesAloneChangedOrThatIsAnotherAccountsIsNeitherArchivedNorDeleted() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database)
            try fixture.addFileSite()
            try fixture.enableArchiving()
            let (edited, holder): (Int64, Int64) = try fixture.connection.query(
                """
                SELECT recording_blob_id, id FROM app.conversations WHERE account_id = 1 AND recording_blob_id IS NOT NULL
                ORDER BY ended_at, id LIMIT 1
                """)[0].decode((Int64, Int64).self)
            let (foreign, borrower): (Int64, Int64) = try fixture.connection.query(
                """
                SELECT (SELECT id FROM app.blobs WHERE account_id = 2 AND content IS NOT NULL ORDER BY id LIMIT 1), c.id
                FROM app.conversations c WHERE c.account_id = 1 AND c.recording_blob_id IS NOT NULL
                ORDER BY c.ended_at, c.id OFFSET 1 LIMIT 1
                """)[0].decode((Int64, Int64).self)
            let foreignBefore: String = try fixture.connection.scalar(
                "SELECT md5(content) FROM app.blobs WHERE id = $1", [foreign])
            try fixture.connection.execute(
                "UPDATE app.conversations SET recording_blob_id = $1 WHERE id = $2", [foreign, borrower])
            // Once the plan has recorded the blob, one byte of its content changes; nothing else does.
            try fixture.connection.executeScript(
                """
                CREATE FUNCTION public.edit_bytes_after_plan() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF EXISTS (SELECT 1 FROM lethe.archive_manifest_blobs WHERE blob_key = '\(edited)') THEN
                        UPDATE app.blobs SET content = set_byte(content, 0, (get_byte(content, 0) + 1) % 256)
                        WHERE id = \(edited) AND content IS NOT NULL;
                    END IF;
                    RETURN NULL;
                END $$;
                CREATE TRIGGER edit_bytes_after_plan AFTER INSERT ON lethe.archive_manifest_blobs
                    FOR EACH STATEMENT EXECUTE FUNCTION public.edit_bytes_after_plan();
                -- What planning recorded for account 2's blob (packing would clear it again).
                CREATE TABLE public.planned_foreign (row_hash text);
                CREATE FUNCTION public.record_foreign() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.blob_key = '\(foreign)' THEN INSERT INTO public.planned_foreign VALUES (NEW.row_hash); END IF;
                    RETURN NULL;
                END $$;
                CREATE TRIGGER record_foreign AFTER INSERT ON lethe.archive_manifest_blobs
                    FOR EACH ROW EXECUTE FUNCTION public.record_foreign();
                """)
            try fixture.snapshot()
            let job = try fixture.startJob()
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(job) == "uploaded", "\(fixture.diagnostics())")
            let planned = try fixture.connection.query("SELECT row_hash FROM public.planned_foreign").map {
                try $0.decode(String?.self, at: 0)
            }
            #expect(planned == [nil], "planning recorded account 2's blob as \(planned)")
            for blob in [edited, foreign] {
                let hash = try fixture.blobHash(job: job, blob: blob)
                #expect(hash == .some(nil), "blob \(blob) is in the manifest with a hash: \(String(describing: hash))")
            }
            let target = try fixture.extract(job: job)
            for blob in [edited, foreign] {
                let path = "\(target)/blobs/blobs/\(blob)"
                #expect(!FileManager.default.fileExists(atPath: path), "blob \(blob) archived")
            }

            try fixture.connection.execute("DROP TRIGGER edit_bytes_after_plan ON lethe.archive_manifest_blobs")
            let file = try #require(try fixture.files(job: job).first)
            try fixture.expectSuccess(["archive", "approve", "\(file.id)"])
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(job) == "deleted", "\(fixture.diagnostics())")
            #expect(try fixture.connection.scalar("SELECT count(*) FROM app.blobs WHERE id = $1", [edited]) == 1)
            let foreignAfter: String? = try fixture.connection.scalar(
                "SELECT md5(content) FROM app.blobs WHERE id = $1", [foreign])
            #expect(foreignAfter == foreignBefore, "account 2's blob was deleted or changed")
            let gone = Set(try fixture.gone(account: 1)["app.conversations"] ?? [])
            #expect(!gone.contains(holder), "the conversation holding the edited blob was deleted")
            #expect(!gone.isEmpty, "nothing of account 1 was deleted: the test proves nothing")
        }
    }
}
