import Archive
import Foundation
import TestSupport
import Testing

/// Other readers open what ZipWriter writes (bsdtar, 7-Zip), reject a wrong passphrase, and
/// ZipReader opens what 7-Zip writes.
@Suite struct ExternalToolTests {
    static let passphrase = "tool interop key"
    static let bsdtar = "/usr/bin/bsdtar"
    static let sevenZip = "/usr/bin/7z"

    /// Expects every entry extracted under `directory` with exactly its bytes.
    func expectExtracted(_ entries: [EntryFixture], in directory: String) throws {
        for entry in entries {
            let data = try #require(FileManager.default.contents(atPath: "\(directory)/\(entry.name)"), "\(entry.name)")
            #expect([UInt8](data) == entry.bytes, "\(entry.name)")
        }
    }

    @Test func bsdtarExtractsTheEntries() throws {
        try withTemporaryDirectory { directory in
            let entries = mixedEntries()
            try writeZip(at: "\(directory)/a.zip", passphrase: Self.passphrase, entries: entries)
            try FileManager.default.createDirectory(atPath: "\(directory)/out", withIntermediateDirectories: false)
            let result = try run(
                Self.bsdtar, ["-xf", "\(directory)/a.zip", "--passphrase", Self.passphrase, "-C", "\(directory)/out"])
            #expect(result.status == 0, "\(result.output)")
            try expectExtracted(entries, in: "\(directory)/out")
        }
    }

    @Test func sevenZipExtractsTheEntries() throws {
        try withTemporaryDirectory { directory in
            let entries = mixedEntries()
            try writeZip(at: "\(directory)/a.zip", passphrase: Self.passphrase, entries: entries)
            let result = try run(
                Self.sevenZip, ["x", "-p\(Self.passphrase)", "-o\(directory)/out", "-y", "\(directory)/a.zip"])
            #expect(result.status == 0, "\(result.output)")
            try expectExtracted(entries, in: "\(directory)/out")
        }
    }

    @Test func bsdtarRejectsAWrongPassphrase() throws {
        try withTemporaryDirectory { directory in
            try writeZip(at: "\(directory)/a.zip", passphrase: Self.passphrase, entries: mixedEntries())
            try FileManager.default.createDirectory(atPath: "\(directory)/out", withIntermediateDirectories: false)
            let result = try run(
                Self.bsdtar, ["-xf", "\(directory)/a.zip", "--passphrase", "not the key", "-C", "\(directory)/out"])
            #expect(result.status != 0, "\(result.output)")
            #expect(result.output.contains("Incorrect passphrase"), "\(result.output)")
        }
    }

    @Test func sevenZipRejectsAWrongPassphrase() throws {
        try withTemporaryDirectory { directory in
            try writeZip(at: "\(directory)/a.zip", passphrase: Self.passphrase, entries: mixedEntries())
            let result = try run(
                Self.sevenZip, ["x", "-pnot-the-key", "-o\(directory)/out", "-y", "\(directory)/a.zip"])
            #expect(result.status != 0, "\(result.output)")
            #expect(result.output.contains("Wrong password"), "\(result.output)")
        }
    }

    @Test func zipReaderOpensAnAES256ZipWrittenBySevenZip() throws {
        try withTemporaryDirectory { directory in
            var payload = Payload(seed: 11)
            let bytes = payload.jsonLines(300_000)
            try Data(bytes).write(to: URL(fileURLWithPath: "\(directory)/rows.jsonl"))
            let made = try run(
                Self.sevenZip,
                ["a", "-tzip", "-mem=AES256", "-p\(Self.passphrase)", "\(directory)/7z.zip", "\(directory)/rows.jsonl"])
            try #require(made.status == 0, "\(made.output)")
            let read = try readZip(at: "\(directory)/7z.zip", passphrase: Self.passphrase)
            #expect(read.map(\.0.name) == ["rows.jsonl"])
            #expect(read.first?.0.isEncrypted == true)
            #expect(read.first?.1 == bytes)
            #expect(throws: ArchiveError.self) { _ = try readZip(at: "\(directory)/7z.zip", passphrase: "nope") }
        }
    }
}
