import Archive
import Crypto
import Foundation
import Store

/// Writes a job's archive as one or more ZIP parts (AES-256) in the spool directory, on the
/// thread that owns it. Each part is a whole ZIP with its own `manifest.json` (last entry):
/// account, job, part, cutoffs, per-type counts and every entry's size, records and SHA-256.
/// A part is closed once it passes `splitSize`, at a record boundary; an entry that goes on
/// in the next part keeps its name there.
struct ArchivePartWriter: ~Copyable {
    struct Job {
        var id: UUID
        var account: String
        var stamp: String
        var created: Date
        var cutoffs: Any
        var counts: Any
    }

    let directory: String
    let job: Job
    let passphrase: String
    let compressionLevel: Int
    let splitSize: Int64

    private var writer: ZipWriter?
    private var part = 0
    private var entries: [[String: Any]] = []
    private var entry: (name: String, hasher: SHA256, size: Int64, records: Int)?
    private(set) var files: [PackedFile] = []

    init(directory: String, job: Job, passphrase: String, compressionLevel: Int, splitSize: Int64) {
        self.directory = directory
        self.job = job
        self.passphrase = passphrase
        self.compressionLevel = compressionLevel
        self.splitSize = splitSize
    }

    mutating func begin(_ name: String) throws {
        if let writer, writer.bytesWritten >= splitSize, !entries.isEmpty { try closePart(final: false) }
        try openIfNeeded()
        try writer!.beginEntry(name, modified: job.created)
        entry = (name, SHA256(), 0, 0)
    }

    mutating func write(_ bytes: [UInt8], records: Int) throws {
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

    mutating func end() throws {
        guard let current = entry else { return }
        try writer!.finishEntry()
        entries.append([
            "name": current.name, "size": current.size, "records": current.records,
            "sha256": Self.hex(current.hasher.finalize()),
        ])
        entry = nil
    }

    /// Closes the last part; returns every part written.
    mutating func finish() throws -> [PackedFile] {
        try end()
        try openIfNeeded()  // an empty job still gets one archive with its manifest
        try closePart(final: true)
        return files
    }

    private mutating func openIfNeeded() throws {
        guard writer == nil else { return }
        part += 1
        let name = ArchiveLayout.fileName(account: job.account, job: job.id, stamp: job.stamp, part: part)
        writer = try ZipWriter(
            creatingFileAt: "\(directory)/\(name)", passphrase: passphrase, compressionLevel: compressionLevel)
    }

    private mutating func closePart(final: Bool) throws {
        guard let writer else { return }
        let formatter = ISO8601DateFormatter()
        let manifest: [String: Any] = [
            "format": "lethe-archive/1", "account": job.account, "job": job.id.uuidString.lowercased(), "part": part,
            "final": final, "created_at": formatter.string(from: job.created), "cutoffs": job.cutoffs,
            "counts": job.counts, "entries": entries,
            "encryption": "WinZip AES-256 (AE-1), deflate level \(compressionLevel)",
        ]
        let data = try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys, .prettyPrinted])
        try writer.beginEntry("manifest.json", size: Int64(data.count), modified: job.created)
        try writer.write(Array(data))
        try writer.finishEntry()
        try writer.close()
        let name = ArchiveLayout.fileName(account: job.account, job: job.id, stamp: job.stamp, part: part)
        let path = "\(directory)/\(name)"
        let records = entries.reduce(Int64(0)) { $0 + Int64(($1["records"] as? Int) ?? 0) }
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
            throw ArchiveJobError("cannot read the archive \(path) back to checksum it")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hex(hasher.finalize())
    }
}

/// An archive job step that cannot go on; the message is safe to log (no keys, no rows).
struct ArchiveJobError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
