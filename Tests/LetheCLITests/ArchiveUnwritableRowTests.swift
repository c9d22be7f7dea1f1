import Foundation
import Postgres
import Store
import TestSupport
import Testing

/// Rows the packer cannot write as one JSON line. `row_to_json` copies a `json` value as it
/// was typed, line breaks included, and COPY then quotes the whole line: the packer's check of
/// the bytes fails and the row stays out of the archive. The server still sees the row as
/// recorded, so only the hashes the packer itself wrote may decide what keeps a hash.
@Suite struct ArchiveUnwritableRowTests {
    @Test func aRowOrBlobWithALineBreakInAJSONValueStaysOutOfTheArchiveAndInTheDatabase() async throws {
        try await ArchiveFixture.withArchivingAccount { fixture in
            let connection = fixture.connection
            // Two different expired conversations: one message, one recording.
            let (message, messageConversation): (Int64, Int64) = try connection.query(
                """
                SELECT m.id, m.conversation_id FROM app.messages m JOIN app.conversations c ON c.id = m.conversation_id
                WHERE c.account_id = 1 ORDER BY c.ended_at, m.id LIMIT 1
                """)[0].decode((Int64, Int64).self)
            let (blob, blobConversation): (Int64, Int64) = try connection.query(
                """
                SELECT recording_blob_id, id FROM app.conversations
                WHERE account_id = 1 AND recording_blob_id IS NOT NULL AND id <> $1
                ORDER BY ended_at, id LIMIT 1
                """, [messageConversation])[0].decode((Int64, Int64).self)
            try connection.executeScript(
                """
                ALTER TABLE app.messages ADD COLUMN meta json;
                ALTER TABLE app.blobs ADD COLUMN meta json;
                UPDATE app.messages SET meta = E'{"pretty":\\n  true}' WHERE id = \(message);
                UPDATE app.blobs SET meta = E'{"pretty":\\r\\n  true}' WHERE id = \(blob);
                """)
            try fixture.snapshot()
            let job = try fixture.startJob()
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(job) == "uploaded", "\(fixture.diagnostics())")
            let messageHash: String? = try connection.scalar(
                """
                SELECT row_hash FROM lethe.archive_manifest
                WHERE job_id = $1::uuid AND table_index = 1 AND row_key = $2
                """, [job, "\(message)"])
            #expect(messageHash == nil, "the message left out of the archive kept its hash")
            #expect(try fixture.blobHash(job: job, blob: blob) == .some(nil), "the unwritten blob kept its hash")

            // Every line of the archive is one JSON object, and neither row is among them.
            let target = try fixture.extract(job: job)
            let enumerator = try #require(FileManager.default.enumerator(atPath: "\(target)/records"))
            var lines = 0
            for case let entry as String in enumerator where entry.hasSuffix(".jsonl") {
                let text = try String(contentsOfFile: "\(target)/records/\(entry)", encoding: .utf8)
                for line in text.split(separator: "\n") {
                    let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                    let id = (object?["id"] as? NSNumber)?.int64Value
                    #expect(id != nil, "\(entry): \(line.prefix(80))")
                    if entry.contains("_blobs") { #expect(id != blob, "\(entry) holds the blob") }
                    if entry.hasPrefix("conversations/1-") { #expect(id != message, "\(entry) holds the message") }
                    lines += 1
                }
            }
            #expect(lines > 100)

            let file = try #require(try fixture.files(job: job).first)
            try fixture.expectSuccess(["archive", "approve", "\(file.id)"])
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(job) == "deleted", "\(fixture.diagnostics())")
            #expect(try connection.scalar("SELECT count(*) FROM app.messages WHERE id = $1", [message]) == 1)
            #expect(try connection.scalar("SELECT count(*) FROM app.blobs WHERE id = $1", [blob]) == 1)
            let gone = Set(try fixture.gone(account: 1)["app.conversations"] ?? [])
            let conversations = try fixture.manifestIDs(job: job, type: "conversations", index: 0)
            #expect(conversations.isSuperset(of: [messageConversation, blobConversation]))
            #expect(gone == conversations.subtracting([messageConversation, blobConversation]))
        }
    }

    /// Adds a keyless join table `app.conversation_tags (conversation_id, tag)` holding `tags`
    /// as a child of conversations, and syncs the registry.
    static func addTags(_ tags: [(Int64, Int)], to fixture: ArchiveFixture) throws {
        try fixture.connection.execute(
            "CREATE TABLE app.conversation_tags (conversation_id bigint NOT NULL, tag integer NOT NULL)")
        for (conversation, tag) in tags {
            try fixture.connection.execute("INSERT INTO app.conversation_tags VALUES ($1, $2)", [conversation, tag])
        }
        let config = try String(contentsOfFile: fixture.configPath, encoding: .utf8)
        let edited = config.replacingOccurrences(
            of: "    children:\n      - table: app.messages\n",
            with:
                "    children:\n      - { table: app.conversation_tags, parent: conversation_id }\n      - table: app.messages\n"
        )
        #expect(edited != config)
        try edited.write(toFile: fixture.configPath, atomically: true, encoding: .utf8)
        try fixture.expectSuccess(["policy", "sync", "--confirm"])
    }

    /// Identical rows of a keyless join table share one manifest key. The archive holds as
    /// many lines as there were rows at packing (`archive_manifest.copies`); one more identical
    /// row inserted after packing matched the key and the hash, and went at deletion with the
    /// ones archived. Now the root is spared, and a root whose copies did not change goes whole.
    @Test func anIdenticalJoinRowInsertedAfterPackingKeepsItsConversation() async throws {
        try await ArchiveFixture.withArchivingAccount { fixture in
            let connection = fixture.connection
            let conversations: [Int64] = try connection.query(
                "SELECT id FROM app.conversations WHERE account_id = 1 AND ended_at IS NOT NULL ORDER BY ended_at, id LIMIT 2"
            ).map { try $0.decode(Int64.self, at: 0) }
            let (grown, same) = (conversations[0], conversations[1])
            try Self.addTags([(grown, 5), (grown, 5), (grown, 7), (same, 9), (same, 9)], to: fixture)

            let id = try fixture.startJob()
            try fixture.runUntilIdle()  // plans, packs and uploads
            #expect(try fixture.jobState(id) == "uploaded", "\(fixture.diagnostics())")
            let copies: [Int?] = try connection.query(
                """
                SELECT m.copies FROM lethe.archive_manifest m
                WHERE m.job_id = $1::uuid AND m.entity_type = 'conversations' AND m.row_key LIKE '[%'
                ORDER BY m.row_key
                """, [id]
            ).map { try $0.decode(Int?.self, at: 0) }
            #expect(copies.sorted { ($0 ?? 1) < ($1 ?? 1) } == [nil, 2, 2], "tag 7 once, tags 5 and 9 twice")

            // The archive holds both copies of the conversation that stays unchanged.
            let target = try fixture.extract(job: id)
            let enumerator = try #require(FileManager.default.enumerator(atPath: "\(target)/records"))
            var archived: [Int64: [Int]] = [:]
            for case let entry as String in enumerator where entry.contains("conversation_tags") {
                let text = try String(contentsOfFile: "\(target)/records/\(entry)", encoding: .utf8)
                for line in text.split(separator: "\n") {
                    let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                    let conversation = try #require((object["conversation_id"] as? NSNumber)?.int64Value)
                    archived[conversation, default: []].append(try #require((object["tag"] as? NSNumber)?.intValue))
                }
            }
            #expect(archived[grown]?.sorted() == [5, 5, 7] && archived[same] == [9, 9], "\(archived)")

            try connection.execute("INSERT INTO app.conversation_tags VALUES ($1, 5)", [grown])
            let file = try #require(try fixture.files(job: id).first)
            try fixture.expectSuccess(["archive", "approve", "\(file.id)"])
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(id) == "deleted", "\(fixture.diagnostics())")
            func tags(_ conversation: Int64) throws -> [Int] {
                try connection.query(
                    "SELECT tag FROM app.conversation_tags WHERE conversation_id = $1 ORDER BY tag", [conversation]
                ).map { try $0.decode(Int.self, at: 0) }
            }
            #expect(try tags(grown) == [5, 5, 5, 7], "three copies of tag 5 now, two archived: all stay")
            #expect(try connection.scalar("SELECT count(*) FROM app.conversations WHERE id = $1", [grown]) == 1)
            #expect(try tags(same) == [], "both copies archived: both went")
            #expect(try connection.scalar("SELECT count(*) FROM app.conversations WHERE id = $1", [same]) == 0)
        }
    }

    /// A keyless join table holding the same row twice: both copies share one manifest key,
    /// so the export's line count matched the keys although a sibling row had gone between
    /// plan and pack. That sibling kept its hash, and, put back unchanged, went at deletion
    /// without being in any archive. Now its hash goes (fewer distinct hashes written than
    /// keys), and its conversation stays whole.
    @Test func aDuplicateRowDoesNotHideASiblingThatWentBetweenPlanAndPack() async throws {
        try await ArchiveFixture.withArchivingAccount { fixture in
            let connection = fixture.connection
            let conversation: Int64 = try connection.scalar(
                "SELECT id FROM app.conversations WHERE account_id = 1 AND ended_at IS NOT NULL ORDER BY ended_at, id LIMIT 1"
            )
            try Self.addTags([(conversation, 5), (conversation, 5), (conversation, 7)], to: fixture)

            let id = try fixture.startJob()
            let jobs = try fixture.archiveJobs()
            try jobs.plan(try fixture.openJob(id, of: jobs), on: connection)
            let tags = try #require(
                jobs.types.first { $0.name == "conversations" }?.tables.firstIndex {
                    $0.label.contains("conversation_tags")
                })
            func hashes() throws -> [String?] {
                try connection.query(
                    """
                    SELECT row_hash FROM lethe.archive_manifest
                    WHERE job_id = $1::uuid AND entity_type = 'conversations' AND table_index = $2 ORDER BY row_key
                    """, [id, tags]
                ).map { try $0.decode(String?.self, at: 0) }
            }
            #expect(try hashes().count == 2 && hashes().allSatisfy { $0 != nil }, "two keys planned, both hashed")
            try connection.execute("DELETE FROM app.conversation_tags WHERE tag = 7")
            try fixture.runUntilIdle()  // packs and uploads
            #expect(try fixture.jobState(id) == "uploaded", "\(fixture.diagnostics())")
            #expect(try hashes().filter { $0 == nil }.count == 1, "the tag that went kept its hash")

            try connection.execute("INSERT INTO app.conversation_tags VALUES ($1, 7)", [conversation])
            let file = try #require(try fixture.files(job: id).first)
            try fixture.expectSuccess(["archive", "approve", "\(file.id)"])
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(id) == "deleted", "\(fixture.diagnostics())")
            #expect(
                try connection.scalar("SELECT count(*) FROM app.conversations WHERE id = $1", [conversation]) == 1)
            let left: [Int] = try connection.query(
                "SELECT tag FROM app.conversation_tags WHERE conversation_id = $1 ORDER BY tag", [conversation]
            ).map { try $0.decode(Int.self, at: 0) }
            #expect(left == [5, 5, 7])
            // The rest of the job went: the check spared only what it had to.
            let deleted: Int = try connection.scalar(
                "SELECT count(*)::int FROM lethe.archive_manifest m WHERE m.job_id = $1::uuid AND m.table_index = 0 "
                    + "AND NOT EXISTS (SELECT 1 FROM app.conversations c WHERE c.id::text = m.row_key)", [id])
            #expect(deleted > 0)
        }
    }
}
