import ArchiveFormat
import Foundation
import Testing

/// The reader's pieces that need no archive: record splitting, entry names an extract
/// refuses, and what file names say.
@Suite struct ArchiveReaderTests {
    @Test func recordSplitterHandlesQuotedRecordsAcrossChunks() {
        let text: [UInt8] =
            Array("{\"a\":1}\n".utf8) + [0x01] + Array("{\"j\":\n[1]}".utf8) + [0x01, 0x01]
            + Array("x".utf8) + [0x01, 0x0A] + Array("{\"b\":2}\n".utf8)
        for chunk in [1, 3, text.count] {
            var splitter = RecordSplitter(keepsRecords: true)
            var records: [String] = []
            var offset = 0
            while offset < text.count {
                let end = min(offset + chunk, text.count)
                text[offset..<end].withUnsafeBytes { bytes in
                    splitter.feed(bytes) { records.append(String(decoding: $0, as: UTF8.self)) }
                }
                offset = end
            }
            #expect(records == ["{\"a\":1}", "{\"j\":\n[1]}\u{1}x", "{\"b\":2}"], "chunk \(chunk)")
            #expect(splitter.count == 3 && splitter.isAtBoundary)
        }
    }

    @Test func unsafeEntryNamesAreRefused() {
        for name in ["records/a/0-app.t.jsonl", "blobs/blobs/12", "manifest.json"] {
            #expect(ExtractSink.isSafe(name), "\(name)")
        }
        for name in ["/etc/passwd", "../x", "records/../../x", "a//b", "./a", "a\\..\\b", ""] {
            #expect(!ExtractSink.isSafe(name), "\(name)")
        }
    }

    @Test func fileNamesGiveAccountJobAndPart() throws {
        let job = "0b9f7c1e-5d2a-4c3b-9e8f-1a2b3c4d5e6f"
        let one = ArchiveFile(path: "/x/backup_a%2Fb_c_\(job)_20261204120000.zip")
        #expect(one.account == "a/b_c" && one.job == job && one.part == 1)
        let two = ArchiveFile(path: "backup_7_\(job)_20261204120000_part2.zip")
        #expect(two.account == "7" && two.part == 2)
        #expect(ArchiveFile(path: "archive.zip").part == nil)
        let ordered = try ArchiveParts.order([two, ArchiveFile(path: "backup_7_\(job)_20261204120000.zip")])
        #expect(ordered.map(\.part) == [1, 2])
        #expect(throws: ArchivePartsError.self) { try ArchiveParts.order([two]) }
    }

    /// A job packed again after a loss names its files `…_gN[_partK].zip`; the parts of one
    /// generation go together, a mix of generations is refused.
    @Test func fileNamesGiveTheGeneration() throws {
        let id = try #require(UUID(uuidString: "0b9f7c1e-5d2a-4c3b-9e8f-1a2b3c4d5e6f"))
        let job = id.uuidString.lowercased()
        let stamp = "20261204120000"
        let name = { (generation: Int, part: Int) in
            ArchiveLayout.fileName(account: "7", job: id, stamp: stamp, generation: generation, part: part)
        }
        #expect(name(1, 1) == "backup_7_\(job)_\(stamp).zip")
        #expect(name(1, 2) == "backup_7_\(job)_\(stamp)_part2.zip")
        #expect(name(2, 1) == "backup_7_\(job)_\(stamp)_g2.zip")
        #expect(name(3, 4) == "backup_7_\(job)_\(stamp)_g3_part4.zip")
        let parsed = ArchiveFile(path: "/x/\(name(3, 4))")
        #expect(parsed.account == "7" && parsed.job == job && parsed.generation == 3 && parsed.part == 4)
        #expect(ArchiveFile(path: name(1, 2)).generation == 1)
        let second = [ArchiveFile(path: name(2, 2)), ArchiveFile(path: name(2, 1))]
        #expect(try ArchiveParts.order(second).map(\.part) == [1, 2])
        #expect(throws: ArchivePartsError.self) {
            try ArchiveParts.order([ArchiveFile(path: name(1, 1)), ArchiveFile(path: name(2, 2))])
        }
    }
}
