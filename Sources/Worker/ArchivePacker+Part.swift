import ArchiveFormat
import Dispatch
import Foundation
import Postgres
import Retention
import Store
import Synchronization

/// Packing one part per REPEATABLE READ transaction (docs/design-archive-pipeline.md, step 2).
extension ArchivePacker {
    /// What one part transaction wrote: the part, the cursor after it (nil: it was the last),
    /// and whether the spool had lost parts committed earlier, so the generation began again.
    package struct Part: Sendable {
        package var file: PackedFile
        package var next: PackCursor?
        package var restarted: Bool
    }

    /// Writes the part after `cursor` (nil: part 1) in the caller's REPEATABLE READ
    /// transaction: the export from the cursor until the part passes `splitSize` at a chunk
    /// boundary (or the export ends), every hash in the range it covers that it did not write
    /// cleared in this snapshot. A partial file a crashed attempt left is removed first.
    package func packPart(
        _ job: ArchiveJob, passphrase: String, cursor: PackCursor?, on connection: Connection
    ) throws -> Part {
        let directory = directory(for: job)
        let fileManager = FileManager.default
        var cursor = cursor
        var restarted = false
        if let committed = cursor, committed.sections != jobs.packSectionsFingerprint {
            // The registry changed under the job (a type, table or store gone, added or moved):
            // its sections are not the ones the committed parts were cut from, and a section
            // skipped in between would keep its hashes. No part is uploaded before packing
            // ends, so the generation starts again from part 1 under the registry in force.
            cursor = nil
            restarted = true
        }
        if let committed = cursor {
            // Keep the parts committed; anything else is what a crashed attempt left.
            let kept = try jobs.packedParts(job, upTo: committed.part, on: connection)
            let present = Set((try? fileManager.contentsOfDirectory(atPath: directory)) ?? [])
            if kept.count == committed.part && kept.allSatisfy(present.contains) {
                for name in present.subtracting(kept) { try fileManager.removeItem(atPath: "\(directory)/\(name)") }
            } else {
                cursor = nil  // another host's spool, or one that lost files: the generation again from part 1
                restarted = true
            }
        }
        if cursor == nil { try? fileManager.removeItem(atPath: directory) }
        try fileManager.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        try? fileManager.setAttributes([.posixPermissions: 0o700], ofItemAtPath: settings.spoolDirectory)

        let (cutoffs, counts) = try jobs.summary(job: job.id, on: connection)
        let pipe = ArchivePipe()
        let shared = PartShared()
        let done = DispatchSemaphore(value: 0)
        let outcome = ResultBox()
        let settings = self.settings
        let part = (cursor?.part ?? 0) + 1
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
                    passphrase: passphrase, compressionLevel: settings.compressionLevel, splitSize: .max,
                    firstPart: part)
                loop: while true {
                    switch pipe.receive() {
                    case .begin(let name): try writer.begin(name)
                    case .data(let bytes, let records): try writer.write(bytes, records: records)
                    case .end: try writer.end()
                    case .sync:
                        let bytes = writer.partBytes
                        shared.written.withLock { $0 = bytes }
                        shared.synced.signal()
                    case .finish: break loop
                    }
                }
                outcome.set(.success(try writer.finish(final: shared.final.withLock { $0 })))
            } catch {
                pipe.fail(error)
                outcome.set(.failure(error))
                while true {  // drain so the producer never blocks
                    let item = pipe.receive()
                    if case .sync = item { shared.synced.signal() }
                    if Self.isFinish(item) { break }
                }
            }
        }
        let producer = PartProducer(
            jobs: jobs, job: job, part: part, splitSize: settings.splitSize, pipe: pipe, shared: shared,
            connection: connection)
        let next: PackCursor?
        do {
            let sorting = try jobs.turnSortingOff(on: connection)
            defer { jobs.restoreSorting(sorting, on: connection) }
            next = try producer.run(from: cursor)
            // The last part: what no section of this registry packed (a type or store dropped
            // since planning) keeps no hash, so putting it back cannot delete it unarchived.
            if next == nil { try jobs.forgetUnpackedSections(job, on: connection) }
            shared.final.withLock { $0 = next == nil }
            pipe.finish()
        } catch {
            pipe.fail(error)
            pipe.finish()
            done.wait()
            throw error
        }
        done.wait()
        guard let file = try outcome.get().first else { throw ArchiveJobError("the archive writer wrote no part") }
        return Part(file: file, next: next, restarted: restarted)
    }
}

/// What the producer and the writer thread share while one part is written.
final class PartShared: Sendable {
    /// The part's bytes on disk at the last `.sync`.
    let written = Mutex<Int64>(0)
    let synced = DispatchSemaphore(value: 0)
    /// Whether the part is the job's last (set before `.finish`).
    let final = Mutex<Bool>(true)
}

/// On the database thread: walks the export order from a cursor, sends the rows and blobs to
/// the writer, clears the hashes in each key range it covers that it did not write, and stops
/// at the first chunk boundary after the part passed `splitSize`.
final class PartProducer {
    let jobs: ArchiveJobs
    let job: ArchiveJob
    let part: Int
    let splitSize: Int64
    let pipe: ArchivePipe
    let shared: PartShared
    let connection: Connection
    /// Bytes sent since the last sync (uncompressed: at least what they will take on disk, near enough).
    private var unsynced: Int64 = 0
    private var written: Int64 = 0

    /// Rows per batch start here and adapt to about `ArchivePacker.chunkSize` of JSON.
    static let firstBatch = 500
    /// Blobs whose hashes are checked together before their contents are written.
    static let blobBatch = 100
    /// Keys of blob rows per batch.
    static let blobRowBatch = 1000

    init(
        jobs: ArchiveJobs, job: ArchiveJob, part: Int, splitSize: Int64, pipe: ArchivePipe, shared: PartShared,
        connection: Connection
    ) {
        (self.jobs, self.job, self.part, self.splitSize) = (jobs, job, part, splitSize)
        (self.pipe, self.shared, self.connection) = (pipe, shared, connection)
    }

    /// The cursor where the next part starts, or nil when this part reached the end.
    func run(from cursor: PackCursor?) throws -> PackCursor? {
        let sections = jobs.packSections
        var start = 0
        if let cursor {
            guard let index = sections.firstIndex(where: { $0.id == cursor.section }) else {
                throw ArchiveJobError(
                    "archive job \(job.id) was packed up to section \(cursor.section), which the registry in force no "
                        + "longer has; send it back to packing from the start (lethe archive retry) after a registry change"
                )
            }
            start = index
        }
        for index in start..<sections.count {
            let section = sections[index]
            let from = index == start ? cursor : nil
            let stop: PackCursor? =
                switch section {
                case .contents(let store): try contents(store, section: section.id, from: from)
                case .blobRows(let store): try blobRows(store, section: section.id, from: from)
                case .rows(let type, let table): try rows(type, table: table, section: section.id, from: from)
                }
            if let stop { return stop }
            if index + 1 < sections.count, try full() { return next(sections[index + 1].id) }
        }
        return nil
    }

    private func next(
        _ section: String, after: String? = nil, resume: String? = nil, offset: Int64? = nil
    )
        -> PackCursor
    {
        PackCursor(
            generation: job.generation, part: part, section: section, after: after, resume: resume, offset: offset,
            sections: jobs.packSectionsFingerprint)
    }

    private func send(_ item: ArchivePipe.Item) throws {
        if case .data(let bytes, _) = item { unsynced += Int64(bytes.count) }
        try pipe.send(item)
    }

    /// Whether the part has passed `splitSize`: asks the writer only when what it may have
    /// written could be that much.
    private func full() throws -> Bool {
        guard written + unsynced >= splitSize else { return false }
        try pipe.send(.sync)
        shared.synced.wait()
        if let error = pipe.error { throw error }
        written = shared.written.withLock { $0 }
        unsynced = 0
        return written >= splitSize
    }

    // MARK: - Sections

    private func rows(
        _ type: CompiledEntityType, table index: Int, section: String, from cursor: PackCursor?
    ) throws -> PackCursor? {
        let entry = ArchiveLayout.rowsEntry(type: type.name, index: index, table: type.tables[index].label)
        var after = cursor?.after
        var limit = Self.firstBatch
        var begun = false
        while true {
            let keys = try jobs.nextRowKeys(
                type, table: index, job: job.id, after: after, limit: limit, on: connection)
            guard let upTo = keys.last else { break }
            var buffer: [UInt8] = []
            var records = 0
            var archived = 0
            var bytes = 0
            var written: [String: Int] = [:]  // lines per hash
            try jobs.exportRows(type, table: index, job: job.id, after: after, upTo: upTo, on: connection) { line in
                guard let json = ArchivePacker.recordHashed(line) else { return }
                written[String(decoding: line.prefix(32), as: UTF8.self), default: 0] += 1
                if !begun {
                    try send(.begin(entry))
                    begun = true
                }
                buffer.append(contentsOf: json)
                records += 1
                archived += 1
                bytes += json.count
                if buffer.count >= ArchivePacker.chunkSize {
                    try send(.data(buffer, records: records))
                    buffer = []
                    records = 0
                }
            }
            if !buffer.isEmpty { try send(.data(buffer, records: records)) }
            // Each hash names one key's row as recorded: fewer hashes written than keys means
            // rows changed, went, or could not be written (docs/archives.md).
            if written.count < keys.count {
                try jobs.forgetRowsNotWritten(
                    type, table: index, job: job.id, after: after, upTo: upTo, written: Array(written.keys),
                    on: connection)
            }
            // Identical rows under one key: how many lines the archive holds (docs/archives.md).
            try jobs.recordCopies(
                type, table: index, job: job.id, after: after, upTo: upTo, written: written, on: connection)
            after = upTo
            if keys.count < limit { break }
            limit = archived > 0 ? max(16, min(50_000, ArchivePacker.chunkSize / max(1, bytes / archived))) : limit
            if try full() {
                if begun { try send(.end) }
                return next(section, after: upTo)
            }
        }
        if begun { try send(.end) }
        return nil
    }

    private func blobRows(_ store: CompiledBlobStore, section: String, from cursor: PackCursor?) throws -> PackCursor? {
        let entry = ArchiveLayout.blobRowsEntry(store: store.store.name)
        var after = cursor?.after
        var begun = false
        while true {
            let keys = try jobs.nextBlobKeys(store, job: job.id, after: after, limit: Self.blobRowBatch, on: connection)
            guard let upTo = keys.last else { break }
            let cleared = try jobs.forgetChangedBlobs(store, job: job, after: after, upTo: upTo, on: connection)
            var buffer: [UInt8] = []
            var records = 0
            var written = Set<String>()
            try jobs.exportBlobRows(store, job: job, after: after, upTo: upTo, on: connection) { line in
                guard let json = ArchivePacker.recordHashed(line) else { return }
                written.insert(String(decoding: line.prefix(32), as: UTF8.self))
                if !begun {
                    try send(.begin(entry))
                    begun = true
                }
                buffer.append(contentsOf: json)
                records += 1
                if buffer.count >= ArchivePacker.chunkSize {
                    try send(.data(buffer, records: records))
                    buffer = []
                    records = 0
                }
            }
            if !buffer.isEmpty { try send(.data(buffer, records: records)) }
            if written.count < keys.count - cleared.count {
                try jobs.forgetBlobRowsNotWritten(
                    store, job: job, after: after, upTo: upTo, written: Array(written), on: connection)
            }
            after = upTo
            if keys.count < Self.blobRowBatch { break }
            if try full() {
                if begun { try send(.end) }
                return next(section, after: upTo)
            }
        }
        if begun { try send(.end) }
        return nil
    }

    private func contents(_ store: CompiledBlobStore, section: String, from cursor: PackCursor?) throws -> PackCursor? {
        var after = cursor?.after
        if let resume = cursor?.resume, let offset = cursor?.offset {
            // The blob cut at the last boundary goes on only while it still hashes as recorded,
            // checked in this part's snapshot (else its row is left out and it is never deleted).
            let cleared = try jobs.forgetChangedBlobs(store, job: job, after: after, upTo: resume, on: connection)
            if !cleared.contains(resume),
                let blob = try jobs.nextBlobContents(store, job: job, after: after, limit: 1, on: connection).first,
                blob.key == resume
            {
                if let stop = try content(
                    store, key: resume, size: blob.size, from: offset, section: section, after: after)
                {
                    return stop
                }
            }
            after = resume
            if try full() { return next(section, after: resume) }
        }
        while true {
            let batch = try jobs.nextBlobContents(store, job: job, after: after, limit: Self.blobBatch, on: connection)
            guard !batch.isEmpty else { return try contentsEnd(store, after: after) }
            var start = 0
            while start < batch.count {
                // Check the hashes of a group of about one slice's worth of contents, then write it.
                var end = start
                var size: Int64 = 0
                repeat {
                    size += max(batch[end].size, 0)
                    end += 1
                } while end < batch.count && size < Int64(ArchivePacker.blobSlice)
                let group = batch[start..<end]
                let cleared = try jobs.forgetChangedBlobs(
                    store, job: job, after: after, upTo: group.last!.key, on: connection)
                for blob in group {
                    if !cleared.contains(blob.key), blob.size >= 0,  // NULL content: no file, restore gives NULL back
                        let stop = try content(
                            store, key: blob.key, size: blob.size, from: 0, section: section, after: after)
                    {
                        return stop
                    }
                    after = blob.key
                    if try full() { return next(section, after: blob.key) }
                }
                start = end
            }
            if batch.count < Self.blobBatch { return try contentsEnd(store, after: after) }
        }
    }

    /// The end of a store's contents: blobs after the last one written that went from the
    /// account in this snapshot lose their hash too, so one put back unchanged before its row
    /// is packed is not archived without its content. (Today the blob rows that follow in the
    /// same part, in the same snapshot, clear them anyway: a part ends inside a section or
    /// after a full one, and the contents end only on a blob that did not fill the part. This
    /// keeps the guarantee from resting on that.)
    private func contentsEnd(_ store: CompiledBlobStore, after: String?) throws -> PackCursor? {
        try jobs.forgetChangedBlobs(store, job: job, after: after, upTo: nil, on: connection)
        return nil
    }

    /// Writes a blob's content from `offset`; the cursor where the next part goes on with it
    /// when this part fills up before its end.
    private func content(
        _ store: CompiledBlobStore, key: String, size: Int64, from start: Int64, section: String, after: String?
    ) throws -> PackCursor? {
        try send(.begin(ArchiveLayout.blobEntry(store: store.store.name, key: key)))
        var offset = start
        while offset < size {
            if offset > start, try full() {
                try send(.end)
                return next(section, after: after, resume: key, offset: offset)
            }
            let length = min(Int64(ArchivePacker.blobSlice), size - offset)
            let bytes = try jobs.blobSlice(
                store, key: key, offset: offset + 1, length: length, account: job.accountID, on: connection)
            try send(.data(Array(bytes), records: 0))
            offset += length
        }
        try send(.end)
        return nil
    }
}
