import Foundation
import Postgres
import TestSupport
import Testing

/// Rows the packer cannot write as one JSON line. `row_to_json` copies a `json` value as it
/// was typed, line breaks included, and COPY then quotes the whole line: the packer's check of
/// the bytes fails and the row stays out of the archive. The server still sees the row as
/// recorded, so only the hashes the packer itself wrote may decide what keeps a hash.
@Suite struct ArchiveUnwritableRowTests {
    @Test func aRowOrBlobWithALineBreakInAJSONValueStaysOutOfTheArchiveAndInTheDatabase() async throws {
        try await withMigratedDatabase { database in
            try await offThePool {
                let fixture = try ArchiveFixture(database: database)
                try fixture.addFileSite()
                try fixture.enableArchiving()
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
                let blobHash: String? = try connection.scalar(
                    "SELECT row_hash FROM lethe.archive_manifest_blobs WHERE job_id = $1::uuid AND blob_key = $2",
                    [job, "\(blob)"])
                #expect(blobHash == nil, "the blob whose row could not be written kept its hash")

                // Every line of the archive is one JSON object, and neither row is among them.
                let target = fixture.directory.appendingPathComponent("extracted").path
                let files = try fixture.files(job: job).map { "\(fixture.siteDirectory)/\($0.name)" }
                try fixture.expectSuccess(["archive", "extract", "--to", target] + files)
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
    }
}
