import Archive
import Crypto
import Foundation

/// Writes a job's archive as one or more ZIP parts (AES-256) in a directory, on the thread
/// that owns it. Each part is a whole ZIP with its own `manifest.json` (last entry):
/// account, job, part, cutoffs, per-type counts and every entry's size, records and SHA-256.
/// A part is closed once it passes `splitSize`, at a record boundary; an entry that goes on
/// in the next part keeps its name there.
public struct ArchivePartWriter: ~Copyable {
    /// What every part's manifest says of the job.
    public struct Job: Sendable {
        public var id: UUID
        public var account: String
        /// The job's creation time as `yyyyMMddHHmmss` (UTC), for the file names.
        public var stamp: String
        public var created: Date
        /// The packing generation: 1, then one more each time the job is packed again after
        /// it lost files (`_gN` in the names, `generation` in the manifests).
        public var generation: Int
        public var cutoffs: [String: [String: String]]
        public var counts: [String: [String: Int]]

        public init(
            id: UUID, account: String, stamp: String, created: Date, generation: Int = 1,
            cutoffs: [String: [String: String]], counts: [String: [String: Int]]
        ) {
            (self.id, self.account, self.stamp, self.created) = (id, account, stamp, created)
            self.generation = generation
            (self.cutoffs, self.counts) = (cutoffs, counts)
        }
    }

    public let directory: String
    public let job: Job
    let passphrase: String
    let compressionLevel: Int
    let splitSize: Int64

    private var writer: ZipWriter?
    private var part = 0
    private var entries: [ArchiveManifest.Entry] = []
    private var entry: (name: String, hasher: SHA256, size: Int64, records: Int)?
    private(set) var files: [PackedFile] = []

    /// `firstPart`: the number of the first part this writer writes (a job packed one part per
    /// transaction writes one part with each writer and sets `splitSize` out of reach).
    public init(
        directory: String, job: Job, passphrase: String, compressionLevel: Int, splitSize: Int64, firstPart: Int = 1
    ) {
        part = firstPart - 1
        self.directory = directory
        self.job = job
        self.passphrase = passphrase
        self.compressionLevel = compressionLevel
        self.splitSize = splitSize
    }

    /// Starts entry `name`, first closing the part if it has passed `splitSize`. A blob's
    /// content (`blobs/…`) is stored uncompressed when its first bytes do not compress.
    public mutating func begin(_ name: String) throws {
        if let writer, writer.bytesWritten >= splitSize, !entries.isEmpty { try closePart(final: false) }
        try openIfNeeded()
        try writer!.beginEntry(
            name, modified: job.created,
            compression: ArchiveLayout.isBlobContent(name) ? .storeIfIncompressible : .deflate)
        entry = (name, SHA256(), 0, 0)
    }

    /// Appends `bytes` (ending on a record boundary, holding `records` records) to the
    /// current entry; once the part has passed `splitSize` the entry goes on in the next.
    public mutating func write(_ bytes: [UInt8], records: Int) throws {
        guard let current = entry else { preconditionFailure("data outside an entry") }
        if let writer, writer.bytesWritten >= splitSize, current.size > 0 {
            try end()
            try closePart(final: false)
            try begin(current.name)
        }
        try writer!.write(bytes)
        entry!.hasher.update(data: bytes)
        entry!.size += Int64(bytes.count)
        entry!.records += records
    }

    /// Ends the current entry and lists it in the part's manifest.
    public mutating func end() throws {
        guard let current = entry else { return }
        try writer!.finishEntry()
        entries.append(
            .init(
                name: current.name, size: current.size, records: current.records,
                sha256: Self.hex(current.hasher.finalize()), stored: writer!.lastEntryStored ? true : nil))
        entry = nil
    }

    /// Closes the last part (`final`: its manifest says no part follows); returns every part written.
    public mutating func finish(final: Bool = true) throws -> [PackedFile] {
        try end()
        try openIfNeeded()  // an empty job still gets one archive with its manifest
        try closePart(final: final)
        return files
    }

    /// Bytes of the open part written to its file so far (grows in blocks).
    public var partBytes: Int64 { writer?.bytesWritten ?? 0 }

    private mutating func openIfNeeded() throws {
        guard writer == nil else { return }
        part += 1
        let name = ArchiveLayout.fileName(
            account: job.account, job: job.id, stamp: job.stamp, generation: job.generation, part: part)
        writer = try ZipWriter(
            creatingFileAt: "\(directory)/\(name)", passphrase: passphrase, compressionLevel: compressionLevel)
    }

    private mutating func closePart(final: Bool) throws {
        guard let writer else { return }
        let manifest = ArchiveManifest(
            account: job.account, job: job.id.uuidString.lowercased(), generation: job.generation, part: part,
            isFinal: final, createdAt: job.created, cutoffs: job.cutoffs, counts: job.counts, entries: entries,
            encryption: ArchiveManifest.encryption(compressionLevel: compressionLevel))
        let data = try manifest.encoded()
        try writer.beginEntry(ArchiveLayout.manifest, size: Int64(data.count), modified: job.created)
        try writer.write(Array(data))
        try writer.finishEntry()
        try writer.close()
        let name = ArchiveLayout.fileName(
            account: job.account, job: job.id, stamp: job.stamp, generation: job.generation, part: part)
        let path = "\(directory)/\(name)"
        let records = entries.reduce(Int64(0)) { $0 + Int64($1.records) }
        files.append(
            PackedFile(
                part: part, name: name, size: writer.bytesWritten, entries: entries.count + 1, records: records,
                sha256: try Self.fileDigest(path)))
        self.writer = nil
        entries = []
    }

    static func hex(_ digest: SHA256.Digest) -> String { digest.map { String(format: "%02x", $0) }.joined() }

    /// SHA-256 of a whole file, read in 1 MiB chunks.
    static func fileDigest(_ path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ArchiveFileError("cannot read the archive \(path) back to checksum it")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hex(hasher.finalize())
    }
}

/// A part the writer wrote: its name in the directory, size, entries (the manifest
/// included), records and the SHA-256 of the whole file.
public struct PackedFile: Sendable, Equatable {
    public var part: Int
    public var name: String
    public var size: Int64
    public var entries: Int
    public var records: Int64
    public var sha256: String
    public init(part: Int, name: String, size: Int64, entries: Int, records: Int64, sha256: String) {
        (self.part, self.name, self.size, self.entries, self.records, self.sha256) =
            (part, name, size, entries, records, sha256)
    }
}
