import Archive
import Foundation
import TestSupport
import Testing

/// How ZipWriter treats its file: created exclusively, counted, unpadded, finished once.
@Suite struct ZipWriterFileTests {
    static let passphrase = "writer tests"

    @Test func refusesAnExistingPath() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/a.zip"
            try Data("keep me".utf8).write(to: URL(fileURLWithPath: path))
            let error = try #require(throws: ArchiveError.self) {
                try ZipWriter(creatingFileAt: path, passphrase: Self.passphrase)
            }
            #expect(error.function == "open")
            #expect(error.code == EEXIST)
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data("keep me".utf8))
        }
    }

    @Test func createsTheFileWithMode0600() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/a.zip"
            try writeZip(at: path, passphrase: Self.passphrase, entries: [])
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        }
    }

    @Test func bytesWrittenGrowsAndEqualsTheFileSize() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/a.zip"
            var payload = Payload(seed: 3)
            let writer = try ZipWriter(creatingFileAt: path, passphrase: Self.passphrase)
            #expect(writer.bytesWritten == 0)
            try writer.beginEntry("random.bin")
            var seen: [Int64] = []
            for _ in 0..<5 {
                try writer.write(payload.randomBytes(1 << 20))
                seen.append(writer.bytesWritten)
            }
            try writer.finishEntry()
            #expect(seen == seen.sorted() && seen.last! > seen.first!, "\(seen)")
            #expect(seen.last! >= 4 << 20)
            #expect(try fileSize(path) == writer.bytesWritten, "counted bytes reached the file")
            try writer.close()
            #expect(writer.bytesWritten > 5 << 20)
            #expect(try fileSize(path) == writer.bytesWritten)
        }
    }

    @Test func aTinyArchiveIsNotPaddedToTheBlockSize() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/a.zip"
            try writeZip(
                at: path, passphrase: Self.passphrase,
                entries: [EntryFixture(name: "a.txt", bytes: Array("hello\n".utf8), declaresSize: false)])
            let size = try fileSize(path)
            #expect(size > 22 && size < 1_024, "\(size) bytes")
            #expect(size < Int64(ZipWriter.blockSize))
        }
    }

    @Test func closeIsIdempotentAndLaterCallsThrow() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/a.zip"
            let writer = try ZipWriter(creatingFileAt: path, passphrase: Self.passphrase)
            try writer.beginEntry("open-at-close.txt")
            try writer.write(Array("finished by close()\n".utf8))
            try writer.close()
            let size = try fileSize(path)
            try writer.close()
            #expect(try fileSize(path) == size)
            #expect(throws: ArchiveError.self) { try writer.beginEntry("late.txt") }
            #expect(
                try readZip(at: path, passphrase: Self.passphrase).map(\.1) == [Array("finished by close()\n".utf8)])
        }
    }

    @Test func misuseThrowsInsteadOfWritingABrokenEntry() throws {
        try withTemporaryDirectory { directory in
            let writer = try ZipWriter(creatingFileAt: "\(directory)/a.zip", passphrase: Self.passphrase)
            #expect(throws: ArchiveError.self) { try writer.write([1, 2, 3]) }
            #expect(throws: ArchiveError.self) { try writer.finishEntry() }
            for name in ["", "/etc/passwd", "a/../../b", "./a", "a//b", "a/"] {
                #expect(throws: ArchiveError.self, "\(name)") { try writer.beginEntry(name) }
            }
            #expect(throws: ArchiveError.self) {
                try ZipWriter(creatingFileAt: "\(directory)/b.zip", passphrase: Self.passphrase, compressionLevel: 10)
            }
            try writer.beginEntry("sized.txt", size: 3)
            #expect(throws: ArchiveError.self) { try writer.beginEntry("second.txt") }
            #expect(throws: ArchiveError.self) { try writer.write([1, 2, 3, 4]) }
            try writer.write([1, 2])
            let short = try #require(throws: ArchiveError.self) { try writer.finishEntry() }
            #expect(short.message.contains("declared"))
            #expect(throws: ArchiveError.self) { try writer.close() }
            #expect(throws: ArchiveError.self) { try writer.close() }
        }
    }

    @Test func deinitWithoutCloseLeavesAnUnfinishedFile() throws {
        try withTemporaryDirectory { directory in
            let path = "\(directory)/a.zip"
            var payload = Payload(seed: 5)
            do {
                let writer = try ZipWriter(creatingFileAt: path, passphrase: Self.passphrase)
                try writer.beginEntry("random.bin")
                try writer.write(payload.randomBytes(3 << 20))
            }
            #expect(FileManager.default.fileExists(atPath: path))
            let size = try fileSize(path)
            #expect(size > 0 && size % Int64(ZipWriter.blockSize) == 0, "only whole blocks, no trailer: \(size)")
            #expect(throws: ArchiveError.self) { _ = try readZip(at: path, passphrase: Self.passphrase) }
        }
    }
}
