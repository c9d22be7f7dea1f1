import Archive
import Foundation
import TestSupport
import Testing

/// A wrong passphrase or damaged data makes ZipReader throw; it never hands out zeros.
@Suite struct ZipReaderFailureTests {
    static let passphrase = "right passphrase"

    @Test func wrongPassphraseThrowsAndYieldsNoData() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/a.zip"
            let entries = mixedEntries()
            try writeZip(at: path, passphrase: Self.passphrase, entries: entries)
            let wrong = "wrong passphrase"
            let reader = try ZipReader(openingFileAt: path, passphrase: wrong)
            defer { reader.close() }
            var failures = 0
            for entry in entries {
                let info = try #require(try reader.nextEntry())
                guard info.isEncrypted else { continue }
                var delivered = 0
                let error = try #require(throws: ArchiveError.self) {
                    try reader.readEntry { delivered += $0.count }
                }
                #expect(error.isWrongPassphrase, "\(entry.name): \(error)")
                #expect(error.function == "archive_read_data_block")
                #expect(!error.description.contains(wrong) && !error.description.contains(Self.passphrase))
                #expect(delivered == 0)
                failures += 1
            }
            #expect(failures == entries.filter { !$0.bytes.isEmpty }.count)
            #expect(failures == 3)
        }
    }

    @Test func tamperedCiphertextFailsButIsNotAWrongPassphrase() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/a.zip"
            var payload = Payload(seed: 7)
            let bytes = payload.randomBytes(3 << 20)
            try writeZip(
                at: path, passphrase: Self.passphrase,
                entries: [EntryFixture(name: "r.bin", bytes: bytes, declaresSize: false)])
            var file = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            file[file.count / 2] ^= 0x01
            try Data(file).write(to: URL(fileURLWithPath: path))

            let reader = try ZipReader(openingFileAt: path, passphrase: Self.passphrase)
            defer { reader.close() }
            _ = try #require(try reader.nextEntry())
            let error = try #require(throws: ArchiveError.self) { try reader.readEntry { _ in } }
            #expect(!error.isWrongPassphrase, "\(error)")
        }
    }

    @Test func emptyPassphraseIsRejectedWithoutCreatingAFile() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/a.zip"
            let error = try #require(throws: ArchiveError.self) { try ZipWriter(creatingFileAt: path, passphrase: "") }
            #expect(error.message.contains("empty"))
            #expect(!FileManager.default.fileExists(atPath: path))
            #expect(throws: ArchiveError.self) { try ZipWriter(creatingFileAt: path, passphrase: "a\u{0}b") }

            try writeZip(at: path, passphrase: Self.passphrase, entries: [])
            #expect(throws: ArchiveError.self) { try ZipReader(openingFileAt: path, passphrase: "") }
        }
    }

    @Test func missingFileThrowsWithTheFunctionName() throws {
        let error = try #require(throws: ArchiveError.self) {
            try ZipReader(openingFileAt: "/nonexistent/lethe/a.zip", passphrase: Self.passphrase)
        }
        #expect(error.function == "archive_read_open_filename")
        #expect(error.code == ENOENT)
        #expect(!error.isWrongPassphrase)
    }
}
