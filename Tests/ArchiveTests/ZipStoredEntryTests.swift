import Archive
import Foundation
import TestSupport
import Testing

/// Blob contents that do not compress are stored, not deflated: faster, and no larger.
@Suite struct ZipStoredEntryTests {
    static let passphrase = "archive key for tests 🔑"

    @Test func randomBytesLookIncompressibleAndTextDoesNot() {
        var payload = Payload(seed: 7)
        func judge(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { ZipWriter.looksIncompressible($0) } }
        #expect(judge(payload.randomBytes(4 << 10)))
        #expect(judge(payload.randomBytes(1 << 20)))
        #expect(!judge(payload.randomBytes((4 << 10) - 1)), "too short to tell")
        #expect(!judge(payload.jsonLines(1 << 20)))
        #expect(!judge([UInt8](repeating: 0, count: 1 << 20)))
        // Text first, noise after: the first 64 KiB decide.
        #expect(!judge(payload.jsonLines(64 << 10) + payload.randomBytes(1 << 20)))
    }

    /// Only an entry begun `.storeIfIncompressible` whose first bytes look random is stored;
    /// the entries after it are deflated again, and every entry reads back (ZipReader and 7-Zip).
    @Test func onlyIncompressibleEntriesAreStoredAndAllReadBack() throws {
        try withTemporaryDirectory { directory in
            var payload = Payload(seed: 11)
            let noise = payload.randomBytes(4 << 20)
            let text = payload.jsonLines(1 << 20)
            let entries: [(String, [UInt8], ZipWriter.EntryCompression, stored: Bool)] = [
                ("blobs/a", noise, .storeIfIncompressible, true),
                ("blobs/b", text, .storeIfIncompressible, false),
                ("records/c.jsonl", noise, .deflate, false),
                ("records/d.jsonl", text, .deflate, false),
                ("blobs/e", noise, .storeIfIncompressible, true),
            ]
            let path = "\(directory)/a.zip"
            let writer = try ZipWriter(creatingFileAt: path, passphrase: Self.passphrase)
            for (name, bytes, compression, stored) in entries {
                try writer.beginEntry(name, compression: compression)
                for start in stride(from: 0, to: bytes.count, by: 1 << 20) {
                    try writer.write(Array(bytes[start..<min(start + (1 << 20), bytes.count)]))
                }
                try writer.finishEntry()
                #expect(writer.lastEntryStored == stored, "\(name)")
            }
            try writer.close()
            let read = try readZip(at: path, passphrase: Self.passphrase)
            #expect(read.map(\.0.name) == entries.map(\.0))
            for ((_, bytes), entry) in zip(read, entries) { #expect(bytes == entry.1, "\(entry.0)") }
            let test = try run(ExternalToolTests.sevenZip, ["t", "-p\(Self.passphrase)", path])
            #expect(test.status == 0, "\(test.output)")
        }
    }

    /// Stored, 4 MiB of random bytes take their size plus the AES overhead; deflated they take
    /// more (deflate's stored blocks) and the ZIP is larger.
    @Test func aStoredEntryIsSmallerThanTheDeflatedOne() throws {
        try withTemporaryDirectory { directory in
            var payload = Payload(seed: 13)
            let noise = payload.randomBytes(4 << 20)
            var sizes: [Int64] = []
            for compression in [ZipWriter.EntryCompression.storeIfIncompressible, .deflate] {
                let path = "\(directory)/\(compression).zip"
                let writer = try ZipWriter(creatingFileAt: path, passphrase: Self.passphrase)
                try writer.beginEntry("blobs/a", compression: compression)
                try writer.write(noise)
                try writer.finishEntry()
                try writer.close()
                sizes.append(try fileSize(path))
                #expect(try readZip(at: path, passphrase: Self.passphrase).first?.1 == noise)
            }
            #expect(sizes[0] < sizes[1] - 1_000, "stored \(sizes[0]) B, deflated \(sizes[1]) B")
            #expect(sizes[0] < Int64(noise.count) + 512, "stored \(sizes[0]) B for \(noise.count) B")
        }
    }
}
