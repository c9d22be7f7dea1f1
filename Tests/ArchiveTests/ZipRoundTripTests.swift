import Archive
import Foundation
import TestSupport
import Testing

/// ZipWriter and ZipReader agree on names, sizes, times and bytes, and everything with data is encrypted.
@Suite struct ZipRoundTripTests {
    static let passphrase = "archive key for tests 🔑"

    @Test func severalEntriesRoundTrip() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/a.zip"
            let entries = mixedEntries()
            let modified = Date(timeIntervalSince1970: 1_700_000_123)
            try writeZip(at: path, passphrase: Self.passphrase, entries: entries, modified: modified)

            let read = try readZip(at: path, passphrase: Self.passphrase, chunkSize: 65_537)
            #expect(read.map(\.0.name) == entries.map(\.name))
            for ((info, bytes), entry) in zip(read, entries) {
                #expect(bytes == entry.bytes, "\(entry.name)")
                #expect(info.size == Int64(entry.bytes.count), "\(entry.name)")
                #expect(info.modified == modified, "\(entry.name)")
            }
            #expect((read.first { $0.0.name == "messages/messages.jsonl" }?.1.count ?? 0) >= 6 << 20)
        }
    }

    @Test func readIntoSmallBuffersYieldsTheSameBytes() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/a.zip"
            let entries = mixedEntries()
            try writeZip(at: path, passphrase: Self.passphrase, entries: entries)
            let reader = try ZipReader(openingFileAt: path, passphrase: Self.passphrase)
            defer { reader.close() }
            var buffer = [UInt8](repeating: 0, count: 4_093)
            for entry in entries {
                let info = try #require(try reader.nextEntry())
                #expect(info.name == entry.name)
                var bytes: [UInt8] = []
                while true {
                    let count = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
                    if count == 0 { break }
                    bytes += buffer[..<count]
                }
                #expect(bytes == entry.bytes, "\(entry.name)")
                #expect(try buffer.withUnsafeMutableBytes { try reader.read(into: $0) } == 0)
            }
            #expect(try reader.nextEntry() == nil)
            #expect(try reader.nextEntry() == nil)
        }
    }

    /// Every entry with data is encrypted (`archive_entry_is_encrypted`); empty entries, of
    /// known or unknown size, are stored as plain entries of size 0.
    @Test func entriesWithDataAreEncrypted() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/a.zip"
            let entries = mixedEntries()
            try writeZip(at: path, passphrase: Self.passphrase, entries: entries)
            let reader = try ZipReader(openingFileAt: path, passphrase: Self.passphrase)
            defer { reader.close() }
            for entry in entries {
                let info = try #require(try reader.nextEntry())
                #expect(info.isEncrypted == !entry.bytes.isEmpty, "\(info.name)")
                #expect(info.size == Int64(entry.bytes.count), "\(info.name)")
            }
        }
    }

    @Test func plaintextDoesNotAppearInTheFile() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/a.zip"
            let secret = Array("{\"body\":\"the customer's card number is 4111 1111 1111 1111\"}\n".utf8)
            let entry = EntryFixture(name: "secret.jsonl", bytes: secret, declaresSize: false)
            let writer = try ZipWriter(creatingFileAt: path, passphrase: Self.passphrase, compressionLevel: 0)
            try writer.beginEntry(entry.name)
            try writer.write(entry.bytes)
            try writer.finishEntry()
            try writer.close()
            let file = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            #expect(file.count > secret.count)
            let needle = Array("4111 1111".utf8)
            let found = file.indices.dropLast(needle.count).contains { Array(file[$0..<$0 + needle.count]) == needle }
            #expect(!found, "stored (level 0) data must still be encrypted")
            #expect(try readZip(at: path, passphrase: Self.passphrase).map(\.1) == [secret])
        }
    }
}
