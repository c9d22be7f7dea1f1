import ArchiveFormat
import Foundation
import Testing

/// manifest.json stays the `lethe-archive/1` format that archives already hold.
@Suite struct ArchiveManifestFormatTests {
    static let manifest = ArchiveManifest(
        account: "7", job: "0b9f7c1e-5d2a-4c3b-9e8f-1a2b3c4d5e6f", part: 2, isFinal: true,
        createdAt: Date(timeIntervalSince1970: 1_796_385_600),
        cutoffs: [
            "conversations": ["cutoff": "2025-12-04 12:00:00+00", "interval": "1 year"],
            "staff": ["keep_only": "every current row"],
        ],
        counts: [
            "conversations": ["app.conversations": 40, "app.messages": 3], "orphan_gc:blobs": ["orphaned blobs": 1],
        ],
        entries: [
            .init(name: "blobs/blobs/a%2Fb", size: 1000, records: 0, sha256: String(repeating: "ab", count: 32)),
            .init(name: "records/conversations/0-app.conversations.jsonl", size: 52, records: 2, sha256: "00"),
        ],
        encryption: ArchiveManifest.encryption(compressionLevel: 6))

    /// The bytes equal what the writer wrote before the manifest had a type of its own: a
    /// dictionary through JSONSerialization, keys sorted, pretty-printed.
    @Test func theEncodingIsTheDictionaryTheWriterUsedToWrite() throws {
        let manifest = Self.manifest
        let dictionary: [String: Any] = [
            "format": "lethe-archive/1", "account": manifest.account, "job": manifest.job, "part": manifest.part,
            "final": manifest.isFinal, "created_at": ISO8601DateFormatter().string(from: manifest.createdAt),
            "cutoffs": manifest.cutoffs, "counts": manifest.counts,
            "entries": manifest.entries.map {
                ["name": $0.name, "size": $0.size, "records": $0.records, "sha256": $0.sha256] as [String: Any]
            },
            "encryption": "WinZip AES-256 (AE-1), deflate level 6",
        ]
        let old = try JSONSerialization.data(withJSONObject: dictionary, options: [.sortedKeys, .prettyPrinted])
        let new = try manifest.encoded()
        #expect(String(decoding: new, as: UTF8.self) == String(decoding: old, as: UTF8.self))
        #expect(try ArchiveManifest(decoding: old) == manifest)
    }

    /// A blob stored uncompressed says so in its entry (`"stored": true`); other entries have
    /// no such key, so manifests written before it read the same.
    @Test func aStoredEntrySaysSo() throws {
        var manifest = Self.manifest
        manifest.entries[0].stored = true
        let text = String(decoding: try manifest.encoded(), as: UTF8.self)
        #expect(text.components(separatedBy: "\"stored\" : true").count == 2, "\(text)")
        #expect(try ArchiveManifest(decoding: Data(text.utf8)) == manifest)
        #expect(!String(decoding: try Self.manifest.encoded(), as: UTF8.self).contains("stored"))
    }

    /// A manifest as an existing archive holds it reads with every field.
    @Test func aWrittenManifestReads() throws {
        let text = """
            {
              "account" : "7",
              "counts" : {
                "conversations" : {
                  "app.conversations" : 40,
                  "app.messages" : 3
                },
                "orphan_gc:blobs" : {
                  "orphaned blobs" : 1
                }
              },
              "created_at" : "2026-12-04T12:00:00Z",
              "cutoffs" : {
                "conversations" : {
                  "cutoff" : "2025-12-04 12:00:00+00",
                  "interval" : "1 year"
                },
                "staff" : {
                  "keep_only" : "every current row"
                }
              },
              "encryption" : "WinZip AES-256 (AE-1), deflate level 6",
              "entries" : [
                {
                  "name" : "blobs\\/blobs\\/a%2Fb",
                  "records" : 0,
                  "sha256" : "\(String(repeating: "ab", count: 32))",
                  "size" : 1000
                },
                {
                  "name" : "records\\/conversations\\/0-app.conversations.jsonl",
                  "records" : 2,
                  "sha256" : "00",
                  "size" : 52
                }
              ],
              "final" : true,
              "format" : "lethe-archive\\/1",
              "job" : "0b9f7c1e-5d2a-4c3b-9e8f-1a2b3c4d5e6f",
              "part" : 2
            }
            """
        #expect(try ArchiveManifest(decoding: Data(text.utf8)) == Self.manifest)
    }
}
