import ArchiveFormat
import Crypto
import Foundation
import Postgres
import Retention
import Store

/// Packs a planned job: in the caller's REPEATABLE READ transaction, streams the manifest's
/// rows that still hash as the plan recorded them (COPY, as JSON lines) and the blobs'
/// contents to a writer thread that compresses and encrypts them into the spool directory;
/// rows that changed since the plan lose their hash and stay out. Reading and compressing
/// overlap; memory stays bounded by the pipe. Package access: `lethe bench archive` packs with it.
package struct ArchivePacker: Sendable {
    let jobs: ArchiveJobs
    /// Of these the packer reads where parts go, where a part closes, and the deflate level.
    let settings: ArchiveOptions

    package init(jobs: ArchiveJobs, settings: ArchiveOptions) {
        self.jobs = jobs
        self.settings = settings
    }

    /// Chunks handed to the writer end on a record boundary at about this size.
    static let chunkSize = 1 << 20
    /// Blob contents are read in slices of this size.
    static let blobSlice = 4 << 20

    /// The job's spool directory (created empty, mode 0700).
    package func directory(for job: ArchiveJob) -> String {
        "\(settings.spoolDirectory)/\(job.id.uuidString.lowercased())"
    }

    /// Writes the job's parts afresh (whatever a crashed attempt left is removed first) and
    /// returns them; run inside a REPEATABLE READ transaction on `connection`.
    package func pack(_ job: ArchiveJob, passphrase: String, on connection: Connection) throws -> [PackedFile] {
        let directory = directory(for: job)
        let fileManager = FileManager.default
        try? fileManager.removeItem(atPath: directory)
        try fileManager.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try? fileManager.setAttributes([.posixPermissions: 0o700], ofItemAtPath: settings.spoolDirectory)

        try jobs.forgetChangedBlobs(job, on: connection)
        let (cutoffs, counts) = try jobs.summary(job: job.id, on: connection)

        let pipe = ArchivePipe()
        let done = DispatchSemaphore(value: 0)
        let outcome = ResultBox()
        let settings = self.settings
        NamedThread.start("lethe-zip") {
            defer { done.signal() }
            do {
                let decoder = JSONDecoder()
                var writer = ArchivePartWriter(
                    directory: directory,
                    job: .init(
                        id: job.id, account: job.accountID, stamp: job.stamp, created: job.createdAt,
                        generation: job.generation,
                        cutoffs: try decoder.decode([String: [String: String]].self, from: Data(cutoffs.utf8)),
                        counts: try decoder.decode([String: [String: Int]].self, from: Data(counts.utf8))),
                    passphrase: passphrase, compressionLevel: settings.compressionLevel, splitSize: settings.splitSize)
                loop: while true {
                    switch pipe.receive() {
                    case .begin(let name): try writer.begin(name)
                    case .data(let bytes, let records): try writer.write(bytes, records: records)
                    case .end: try writer.end()
                    case .sync: break  // only packPart asks
                    case .finish: break loop
                    }
                }
                outcome.set(.success(try writer.finish()))
            } catch {
                pipe.fail(error)
                outcome.set(.failure(error))
                while !Self.isFinish(pipe.receive()) {}  // drain so the producer never blocks
            }
        }
        do {
            try produce(job, into: pipe, on: connection)
            pipe.finish()
        } catch {
            pipe.fail(error)
            pipe.finish()
            done.wait()
            throw error
        }
        done.wait()
        return try outcome.get()
    }

    static func isFinish(_ item: ArchivePipe.Item) -> Bool {
        if case .finish = item { return true }
        return false
    }

    /// Blob contents first, then the blob rows, then each type's tables root first: the
    /// order a restore inserts them in.
    private func produce(_ job: ArchiveJob, into pipe: ArchivePipe, on connection: Connection) throws {
        // With sorting on, the planner would sort everything by key before the first row
        // leaves and the writer thread would idle through the whole sort (turnSortingOff says why).
        let sorting = try jobs.turnSortingOff(on: connection)
        defer { jobs.restoreSorting(sorting, on: connection) }
        let stores = jobs.registry.blobStores.values.sorted { $0.store.name < $1.store.name }
        for store in stores {
            for (key, size) in try jobs.blobSizes(store, job: job.id, on: connection) {
                guard size >= 0 else { continue }  // NULL content: no file, and restore gives NULL back
                try pipe.send(.begin(ArchiveLayout.blobEntry(store: store.store.name, key: key)))
                var offset: Int64 = 0
                while offset < size {
                    let length = min(Int64(Self.blobSlice), size - offset)
                    let bytes = try jobs.blobSlice(
                        store, key: key, offset: offset + 1, length: length, account: job.accountID, on: connection)
                    try pipe.send(.data(Array(bytes), records: 0))
                    offset += length
                }
                try pipe.send(.end)
            }
        }
        for store in stores {
            _ = try copy(
                { try jobs.exportBlobRows(store, job: job.id, on: connection, $0) },
                entry: ArchiveLayout.blobRowsEntry(store: store.store.name), into: pipe)
        }
        let hashed = try jobs.hashedRows(job: job.id, on: connection)
        for type in jobs.types {
            for index in type.tables.indices {
                let archived = try copy(
                    { try jobs.exportRows(type, table: index, job: job.id, on: connection, $0) },
                    entry: ArchiveLayout.rowsEntry(type: type.name, index: index, table: type.tables[index].label),
                    checkingHashes: true, into: pipe)
                if archived < hashed[type.name]?[index] ?? 0 {
                    try jobs.forgetChangedRows(type, table: index, job: job.id, on: connection)
                }
            }
        }
    }

    /// Streams one export (a COPY's lines) into an entry (begun on its first row: no empty
    /// entries), in chunks that end on a line, and returns the records written. `checkingHashes`:
    /// each line is a recorded hash, `\u{02}`, and the JSON, written only where the JSON has that hash.
    private func copy(
        _ export: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void, entry: String,
        checkingHashes: Bool = false, into pipe: ArchivePipe
    ) throws -> Int {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(Self.chunkSize + 64 << 10)
        var records = 0
        var total = 0
        var begun = false
        try export { line in
            var row = line
            if checkingHashes {
                guard let json = Self.recordHashed(line) else { return }
                row = json
            }
            if !begun {
                try pipe.send(.begin(entry))
                begun = true
            }
            buffer.append(contentsOf: row)
            records += 1
            total += 1
            if buffer.count >= Self.chunkSize {
                try pipe.send(.data(buffer, records: records))
                buffer = []
                buffer.reserveCapacity(Self.chunkSize + 64 << 10)
                records = 0
            }
        }
        if !buffer.isEmpty { try pipe.send(.data(buffer, records: records)) }
        if begun { try pipe.send(.end) }
        return total
    }

    /// The JSON line of `hash \u{02} JSON \n` if its MD5 is `hash` (as PostgreSQL's `md5`
    /// gave it when the plan recorded the row), else nil.
    static func recordHashed(_ line: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard line.count > 34, line[32] == 0x02, line[line.count - 1] == 0x0A else { return nil }
        let json = UnsafeRawBufferPointer(rebasing: line[33...])
        let digest = Insecure.MD5.hash(data: UnsafeRawBufferPointer(rebasing: json.dropLast()))
        var position = 0
        for byte in digest {
            guard line[position] == hexDigits[Int(byte >> 4)], line[position + 1] == hexDigits[Int(byte & 0xF)]
            else { return nil }
            position += 2
        }
        return json
    }

    static let hexDigits = Array("0123456789abcdef".utf8)
}

/// The writer thread's result, handed back to the producer.
final class ResultBox: @unchecked Sendable {
    // Written once by the writer thread before it signals; read after the wait.
    private var result: Result<[PackedFile], any Error> = .failure(ArchiveJobError("the archive writer did not finish"))
    func set(_ value: Result<[PackedFile], any Error>) { result = value }
    func get() throws -> [PackedFile] { try result.get() }
}
