import ArchiveFormat
import Crypto
import Foundation
import TestSupport
import Testing

/// What `ArchivePartWriter` writes, `ArchivePartScan` reads back unchanged, with the sinks
/// that extract and restore it: every kind of entry, an entry cut at a part boundary, and
/// each part's manifest.
@Suite struct ArchiveRoundTripTests {
    static let key = ArchiveKeys.Key(secret: "Round-Trip-Key-2026", source: "the test's key")
    static let job = ArchivePartWriter.Job(
        id: UUID(uuidString: "0B9F7C1E-5D2A-4C3B-9E8F-1A2B3C4D5E6F")!, account: "a/b 7", stamp: "20261204120000",
        created: Date(timeIntervalSince1970: 1_796_385_600),
        cutoffs: [
            "conversations": ["cutoff": "2025-12-04 12:00:00+00", "interval": "1 year"],
            "staff": ["keep_only": "every current row"],
        ],
        counts: [
            "conversations": ["app.conversations": 40, "app.messages": 3], "orphan_gc:blobs": ["orphaned blobs": 1],
        ])

    /// One entry as the packer hands it over: its name and its pieces (each ending on a
    /// record boundary, with the records it holds).
    struct Written {
        var name: String
        var kind: ArchiveEntryName
        var pieces: [([UInt8], records: Int)]
        /// The records a restore gets back (unquoted, without line breaks).
        var records: [String] = []

        var bytes: [UInt8] { pieces.flatMap(\.0) }
        var recordCount: Int { pieces.reduce(0) { $0 + $1.records } }
    }

    /// Blobs (a large one, a key that needs encoding, an empty one), blob rows, a large root
    /// table and a child table with a quoted record holding a line break and 0x01.
    static func entries() -> [Written] {
        var generator = SeededGenerator(seed: 15)
        let large = ArchiveLayout.blobEntry(store: "blobs", key: "12")
        let encoded = ArchiveLayout.blobEntry(store: "blobs", key: "a/b c")
        let empty = ArchiveLayout.blobEntry(store: "blobs", key: "13")
        var entries = [
            Written(
                name: large, kind: .blob(store: "blobs", key: "12"),
                pieces: (0..<10).map { _ in (generator.bytes(256 << 10), 0) }),
            Written(name: encoded, kind: .blob(store: "blobs", key: "a/b c"), pieces: [(generator.bytes(1000), 0)]),
            Written(name: empty, kind: .blob(store: "blobs", key: "13"), pieces: []),
        ]
        let blobRows = ["{\"id\":12,\"content\":null}", "{\"id\":13,\"content\":null}", "{\"id\":\"a/b c\"}"]
        entries.append(
            Written(
                name: ArchiveLayout.blobRowsEntry(store: "blobs"), kind: .blobRows(store: "blobs"),
                pieces: [(Array(blobRows.map { $0 + "\n" }.joined().utf8), blobRows.count)], records: blobRows))
        var roots = Written(
            name: ArchiveLayout.rowsEntry(type: "conversations", index: 0, table: "app.conversations"),
            kind: .rows(type: "conversations", index: 0, table: "app.conversations"), pieces: [])
        for piece in 0..<8 {
            let records = (0..<5).map { "{\"id\":\(piece * 5 + $0),\"text\":\"\(generator.text(60_000))\"}" }
            roots.pieces.append((Array(records.map { $0 + "\n" }.joined().utf8), records.count))
            roots.records += records
        }
        entries.append(roots)
        let quoted: [UInt8] =
            [0x01] + Array("{\"j\":\"x".utf8) + [0x01, 0x01] + Array("\n y\"}".utf8) + [0x01, 0x0A]
        entries.append(
            Written(
                name: ArchiveLayout.rowsEntry(type: "conversations", index: 1, table: "app.messages"),
                kind: .rows(type: "conversations", index: 1, table: "app.messages"),
                pieces: [(Array("{\"id\":1}\n".utf8) + quoted, 2), (Array("{\"id\":3}\n".utf8), 1)],
                records: ["{\"id\":1}", "{\"j\":\"x\u{1}\n y\"}", "{\"id\":3}"]))
        return entries
    }

    /// Writes `entries` as the packer does (split size 1: a part closes as soon as it has
    /// written a block) and returns the parts.
    static func write(_ entries: [Written], into directory: String) throws -> [PackedFile] {
        var writer = ArchivePartWriter(
            directory: directory, job: job, passphrase: key.secret, compressionLevel: 6, splitSize: 1)
        for entry in entries {
            try writer.begin(entry.name)
            for (bytes, records) in entry.pieces { try writer.write(bytes, records: records) }
            try writer.end()
        }
        return try writer.finish()
    }

    @Test func whatTheWriterWritesTheReaderReadsBack() throws {
        try withTemporaryDirectory { directory in
            let entries = Self.entries()
            let packed = try Self.write(entries, into: directory)
            #expect(packed.count >= 3, "the large entries were to be cut into several parts")
            #expect(packed.map(\.part) == Array(1...packed.count))
            #expect(packed.reduce(0) { $0 + $1.records } == Int64(entries.reduce(0) { $0 + $1.recordCount }))

            let sink = CollectingSink()
            var summaries: [PartSummary] = []
            for (index, file) in packed.enumerated() {
                let path = "\(directory)/\(file.name)"
                #expect(
                    file.name
                        == ArchiveLayout.fileName(
                            account: Self.job.account, job: Self.job.id, stamp: Self.job.stamp, part: index + 1))
                let data = try Data(contentsOf: URL(fileURLWithPath: path))
                #expect(Int64(data.count) == file.size)
                #expect(SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined() == file.sha256)

                let archiveFile = ArchiveFile(path: path)
                #expect(archiveFile.account == Self.job.account && archiveFile.part == index + 1)
                #expect(archiveFile.job == Self.job.id.uuidString.lowercased())
                let summary = try ArchivePartScan.scan(archiveFile, key: Self.key, into: sink)
                try ArchiveParts.check(summary, index: index, count: packed.count, first: summaries.first)
                summaries.append(summary)
                #expect(summary.entries == file.entries && Int64(summary.records) == file.records)

                // The manifest: what the job said, in the part's place, byte for byte as read.
                let manifest = summary.manifest
                #expect(manifest.format == "lethe-archive/1")
                #expect(manifest.account == Self.job.account && manifest.job == Self.job.id.uuidString.lowercased())
                #expect(manifest.part == index + 1 && manifest.isFinal == (index == packed.count - 1))
                #expect(manifest.createdAt == Self.job.created)
                #expect(manifest.cutoffs == Self.job.cutoffs && manifest.counts == Self.job.counts)
                #expect(manifest.encryption == "WinZip AES-256 (AE-1), deflate level 6")
                #expect(manifest.entries.count == file.entries - 1)
                #expect(try ArchiveManifest(decoding: Data(sink.manifests[index])) == manifest)
                #expect(try Array(manifest.encoded()) == sink.manifests[index])
            }

            // Every entry, joined across parts, is what was written, under the name it was written.
            #expect(sink.order == entries.map(\.name))
            for entry in entries {
                #expect(sink.contents[entry.name] == entry.bytes, "\(entry.name)")
                #expect(ArchiveEntryName(entry.name) == entry.kind, "\(entry.name)")
                let listed = summaries.flatMap(\.manifest.entries).filter { $0.name == entry.name }
                #expect(listed.reduce(0) { $0 + $1.size } == Int64(entry.bytes.count), "\(entry.name)")
                #expect(listed.reduce(0) { $0 + $1.records } == entry.recordCount, "\(entry.name)")
            }
            // The large random blob is stored in every part it spans; the 1,000-byte one (too
            // short to judge) and every records entry are deflated.
            let listed = summaries.flatMap(\.manifest.entries)
            let large = ArchiveLayout.blobEntry(store: "blobs", key: "12")
            #expect(listed.filter { $0.name == large }.count >= 2)
            #expect(listed.allSatisfy { ($0.stored == true) == ($0.name == large) }, "\(listed)")
            #expect(ArchiveEntryName(ArchiveLayout.manifest) == .manifest)
            #expect(sink.begun.count > entries.count + packed.count, "no entry went on in a later part")
        }
    }

    @Test func theRestoreSinkHandsOverEveryBlobAndRecord() throws {
        try withTemporaryDirectory { directory in
            let entries = Self.entries()
            let packed = try Self.write(entries, into: directory)
            let target = RecordingTarget()
            let sink = RestoreSink(target)
            for file in packed {
                sink.file = file.name
                _ = try ArchivePartScan.scan(ArchiveFile(path: "\(directory)/\(file.name)"), key: Self.key, into: sink)
            }
            try sink.finish()
            #expect(target.checked.filter { $0 != .manifest } == entries.map(\.kind))
            for entry in entries {
                switch entry.kind {
                case .blob(let store, let key):
                    #expect(target.blobs["\(store)/\(key)"] == Data(entry.bytes), "\(entry.name)")
                default:
                    #expect(target.records[entry.kind] == entry.records, "\(entry.name)")
                    #expect(
                        target.batches[entry.kind, default: []].allSatisfy { $0 <= RestoreSink.batchSize },
                        "\(entry.name)")
                }
            }
        }
    }

    /// Identical records (a keyless join table's duplicate rows, one key) never straddle two
    /// restore batches: the second batch would find the first copy restored and refuse it.
    @Test func theRestoreSinkKeepsIdenticalRecordsInOneBatch() throws {
        let target = RecordingTarget()
        let sink = RestoreSink(target)
        let name = ArchiveLayout.rowsEntry(type: "conversations", index: 1, table: "app.conversation_tags")
        try sink.begin(name)
        let size = RestoreSink.batchSize
        var records = (0..<(size - 2)).map { #"{"conversation_id":1,"tag":\#($0)}"# }
        records += Array(repeating: #"{"conversation_id":2,"tag":5}"#, count: 3)  // across the boundary
        records += [#"{"conversation_id":3,"tag":1}"#]
        records += Array(repeating: #"{"conversation_id":4,"tag":1}"#, count: size + 1)  // longer than a batch
        let text = records.map { $0 + "\n" }.joined()
        try text.utf8.withContiguousStorageIfAvailable { try sink.write(UnsafeRawBufferPointer($0)) }
        try sink.end()
        try sink.finish()
        let entry = ArchiveEntryName(name)
        #expect(target.records[entry] == records, "every record, in order")
        #expect(target.batches[entry]?.first == size - 2, "\(target.batches[entry] ?? [])")
        #expect(target.batches[entry, default: []].allSatisfy { $0 <= size })
        var position = 0
        for count in target.batches[entry, default: []] {
            let batch = records[position..<(position + count)]
            position += count
            if batch.contains(#"{"conversation_id":2,"tag":5}"#) {
                #expect(
                    batch.filter { $0 == #"{"conversation_id":2,"tag":5}"# }.count == 3, "one batch holds all three")
            }
        }
    }

    @Test func theExtractSinkWritesEveryEntryAndEachPartsManifest() throws {
        try withTemporaryDirectory { directory in
            let entries = Self.entries()
            let packed = try Self.write(entries, into: directory)
            let sink = ExtractSink(directory: "\(directory)/out")
            try sink.createDirectory()
            var manifests: [ArchiveManifest] = []
            for (index, file) in packed.enumerated() {
                sink.part = index + 1
                manifests.append(
                    try ArchivePartScan.scan(
                        ArchiveFile(path: "\(directory)/\(file.name)"), key: Self.key, into: sink
                    ).manifest)
            }
            for entry in entries {
                let data = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/out/\(entry.name)"))
                #expect(data == Data(entry.bytes), "\(entry.name)")
            }
            for (index, manifest) in manifests.enumerated() {
                let name = index == 0 ? "manifest.json" : "manifest_part\(index + 1).json"
                let data = try Data(contentsOf: URL(fileURLWithPath: "\(directory)/out/\(name)"))
                #expect(try ArchiveManifest(decoding: data) == manifest, "\(name)")
            }
            #expect(sink.filesWritten == entries.count + packed.count)
        }
    }

    @Test func anEmptyJobIsOnePartWithItsManifest() throws {
        try withTemporaryDirectory { directory in
            let packed = try Self.write([], into: directory)
            #expect(packed.count == 1 && packed[0].entries == 1 && packed[0].records == 0)
            let summary = try ArchivePartScan.scan(ArchiveFile(path: "\(directory)/\(packed[0].name)"), key: Self.key)
            #expect(summary.manifest.isFinal && summary.manifest.part == 1 && summary.manifest.entries.isEmpty)
            #expect(summary.manifest.cutoffs == Self.job.cutoffs && summary.manifest.counts == Self.job.counts)
        }
    }

    @Test func aWrongKeyOpensNothing() throws {
        try withTemporaryDirectory { directory in
            let packed = try Self.write(Array(Self.entries().suffix(2)), into: directory)
            let wrong = ArchiveKeys.Key(secret: "Not-The-Key", source: "the wrong key")
            #expect(throws: ArchiveFileError.self) {
                try ArchivePartScan.scan(ArchiveFile(path: "\(directory)/\(packed[0].name)"), key: wrong)
            }
        }
    }
}

/// The database side of a restore, recording what it is handed.
final class RecordingTarget: ArchiveRestoreTarget {
    var checked: [ArchiveEntryName] = []
    var blobs: [String: Data] = [:]
    var records: [ArchiveEntryName: [String]] = [:]
    /// The size of every batch, per entry.
    var batches: [ArchiveEntryName: [Int]] = [:]
    private var blob = ""

    func check(_ entry: ArchiveEntryName) throws { checked.append(entry) }

    func beginBlob(store: String, key: String) throws {
        blob = "\(store)/\(key)"
        blobs[blob] = Data()
    }

    func blobData(_ bytes: Data) throws { blobs[blob]!.append(bytes) }

    func insert(_ records: [String], into entry: ArchiveEntryName) throws {
        self.records[entry, default: []] += records
        batches[entry, default: []].append(records.count)
    }
}
