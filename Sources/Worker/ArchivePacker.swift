import Foundation
import Postgres
import Retention
import Store

/// Packs a planned job: in the caller's REPEATABLE READ transaction, hashes the manifest's
/// rows and streams them (COPY, as JSON lines) and the blobs' contents to a writer thread
/// that compresses and encrypts them into the spool directory. Reading and compressing
/// overlap; memory stays bounded by the pipe.
struct ArchivePacker: Sendable {
    struct Settings: Sendable {
        var spoolDirectory: String
        var splitSize: Int64
        var compressionLevel: Int
    }

    let jobs: ArchiveJobs
    let settings: Settings

    /// Chunks handed to the writer end on a record boundary at about this size.
    static let chunkSize = 1 << 20
    /// Blob contents are read in slices of this size.
    static let blobSlice = 4 << 20

    /// The job's spool directory (created empty, mode 0700).
    func directory(for job: ArchiveJob) -> String { "\(settings.spoolDirectory)/\(job.id.uuidString.lowercased())" }

    /// Writes the job's parts afresh (whatever a crashed attempt left is removed first) and
    /// returns them; run inside a REPEATABLE READ transaction on `connection`. `hashed` is
    /// called once the rows' hashes are set, before the first row is streamed (for timing).
    func pack(
        _ job: ArchiveJob, passphrase: String, on connection: Connection, hashed: () -> Void = {}
    ) throws -> [PackedFile] {
        let directory = directory(for: job)
        let fileManager = FileManager.default
        try? fileManager.removeItem(atPath: directory)
        try fileManager.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try? fileManager.setAttributes([.posixPermissions: 0o700], ofItemAtPath: settings.spoolDirectory)

        try jobs.hashContent(job, on: connection)
        hashed()
        let (cutoffs, counts) = try jobs.summary(job: job.id, on: connection)

        let pipe = ArchivePipe()
        let done = DispatchSemaphore(value: 0)
        let outcome = ResultBox()
        let settings = self.settings
        let thread = Thread {
            Thread.current.name = "lethe-zip"
            defer { done.signal() }
            do {
                let parsedCutoffs = try JSONSerialization.jsonObject(with: Data(cutoffs.utf8))
                let parsedCounts = try JSONSerialization.jsonObject(with: Data(counts.utf8))
                var writer = ArchivePartWriter(
                    directory: directory,
                    job: .init(
                        id: job.id, account: job.accountID, stamp: job.stamp, created: job.createdAt,
                        cutoffs: parsedCutoffs, counts: parsedCounts),
                    passphrase: passphrase, compressionLevel: settings.compressionLevel, splitSize: settings.splitSize)
                loop: while true {
                    switch pipe.receive() {
                    case .begin(let name): try writer.begin(name)
                    case .data(let bytes, let records): try writer.write(bytes, records: records)
                    case .end: try writer.end()
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
        thread.start()
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
        let jobLiteral = try connection.literal(job.id.uuidString.lowercased())
        // The manifest's statistics predate this transaction's hashes (NULL when planned), so
        // the planner expects almost nothing to export and would join, then sort everything
        // by key before the first row leaves: the writer thread would idle through the whole
        // sort. Without sorting it walks the manifest's key index and rows flow at once, in
        // the same order. Set for this transaction's exports only, restored afterwards.
        let sorting = try connection.query("SELECT current_setting('enable_sort')")[0].decode(String.self, at: 0)
        try connection.execute("SELECT set_config('enable_sort', 'off', true)")
        defer { _ = try? connection.execute("SELECT set_config('enable_sort', $1, true)", [sorting]) }
        let stores = jobs.registry.blobStores.values.sorted { $0.store.name < $1.store.name }
        for store in stores {
            guard let sizes = store.contentSizes, let slice = store.contentSlice else { continue }
            for row in try connection.query(sizes, [job.id]) {
                let (key, size) = try row.decode((String, Int64).self)
                guard size >= 0 else { continue }  // NULL content: no file, and restore gives NULL back
                try pipe.send(.begin(ArchiveLayout.blobEntry(store: store.store.name, key: key)))
                var offset: Int64 = 0
                while offset < size {
                    let length = min(Int64(Self.blobSlice), size - offset)
                    let bytes = try connection.query(slice, [key, offset + 1, length])[0].decode(Data.self, at: 0)
                    try pipe.send(.data(Array(bytes), records: 0))
                    offset += length
                }
                try pipe.send(.end)
            }
        }
        for store in stores {
            try copy(
                store.exportRows(jobLiteral: jobLiteral), entry: ArchiveLayout.blobRowsEntry(store: store.store.name),
                into: pipe, on: connection)
        }
        for type in jobs.types {
            for index in type.tables.indices {
                try copy(
                    type.exportRows(index, jobLiteral: jobLiteral),
                    entry: ArchiveLayout.rowsEntry(type: type.name, index: index, table: type.tables[index].label),
                    into: pipe, on: connection)
            }
        }
    }

    /// Streams one COPY into an entry (begun on its first row: no empty entries), in chunks
    /// that end on a line.
    private func copy(_ sql: String, entry: String, into pipe: ArchivePipe, on connection: Connection) throws {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(Self.chunkSize + 64 << 10)
        var records = 0
        var begun = false
        try connection.copyOut(sql) { row in
            if !begun {
                try pipe.send(.begin(entry))
                begun = true
            }
            buffer.append(contentsOf: row)
            records += 1
            if buffer.count >= Self.chunkSize {
                try pipe.send(.data(buffer, records: records))
                buffer = []
                buffer.reserveCapacity(Self.chunkSize + 64 << 10)
                records = 0
            }
        }
        if !buffer.isEmpty { try pipe.send(.data(buffer, records: records)) }
        if begun { try pipe.send(.end) }
    }
}

/// The writer thread's result, handed back to the producer.
final class ResultBox: @unchecked Sendable {
    // Written once by the writer thread before it signals; read after the wait.
    private var result: Result<[PackedFile], any Error> = .failure(ArchiveJobError("the archive writer did not finish"))
    func set(_ value: Result<[PackedFile], any Error>) { result = value }
    func get() throws -> [PackedFile] { try result.get() }
}
