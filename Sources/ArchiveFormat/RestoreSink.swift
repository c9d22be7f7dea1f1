import Foundation

/// Where a restore puts what `RestoreSink` reads: the database side of a restore (Store's
/// `ArchiveRestore`), kept out of the format.
public protocol ArchiveRestoreTarget: AnyObject {
    /// Checks that `entry` can be restored before any of its data arrives; throws an
    /// `ArchiveRestoreError` when it cannot.
    func check(_ entry: ArchiveEntryName) throws
    /// Starts the content of one blob (an empty entry is empty content).
    func beginBlob(store: String, key: String) throws
    /// Appends a slice to the current blob's content.
    func blobData(_ bytes: Data) throws
    /// Inserts `records` (JSON objects, at most `RestoreSink.batchSize`) of a rows entry.
    func insert(_ records: [String], into entry: ArchiveEntryName) throws
}

/// Feeds a restore: blob contents in slices, records in batches.
public final class RestoreSink: ArchiveEntrySink {
    /// Blob content goes to the database in slices of this size.
    public static let sliceSize = 4 << 20
    /// Records inserted per statement at most.
    public static let batchSize = 1000
    /// A batch is sent once it holds this many bytes, even with fewer than `batchSize` records.
    public static let batchBytes = 8 << 20

    let restore: any ArchiveRestoreTarget
    /// The file being read, for messages.
    public var file = ""
    private var entry = ArchiveEntryName.other
    /// The last entry begun other than a manifest.
    private var name: String?
    private var splitter = RecordSplitter(keepsRecords: true)
    private var batch: [String] = []
    private var pendingBytes = 0
    private var slice: [UInt8] = []

    public init(_ restore: any ArchiveRestoreTarget) { self.restore = restore }

    public func begin(_ name: String) throws {
        guard name != ArchiveLayout.manifest else {
            // A part's last entry, not restored: the entry before it may go on in the next part.
            entry = .manifest
            return
        }
        defer { self.name = name }
        guard name != self.name else {  // the same entry goes on from the previous part
            entry = ArchiveEntryName(name)
            return
        }
        try finishEntry()
        entry = ArchiveEntryName(name)
        do {
            try restore.check(entry)
        } catch let error as ArchiveRestoreError {
            throw ArchiveRestoreError(error.kind, "\(file), entry \(name): \(error.description)")
        }
        if case .blob(let store, let key) = entry { try restore.beginBlob(store: store, key: key) }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        switch entry {
        case .blob:
            slice.append(contentsOf: bytes)
            if slice.count >= Self.sliceSize { try flushSlice() }
        case .blobRows, .rows:
            try splitter.feed(bytes) { record in
                batch.append(String(decoding: record, as: UTF8.self))
                pendingBytes += record.count
                if batch.count >= Self.batchSize || pendingBytes >= Self.batchBytes { try flushBatch(holdingRun: true) }
            }
        case .manifest, .other: break
        }
    }

    /// Sends what the entry's piece left; a record may not be cut here (records entries
    /// are split between parts only at record boundaries).
    public func end() throws {
        try flushSlice()
        try flushBatch()
    }

    /// Ends the last entry.
    public func finish() throws { try finishEntry() }

    private func finishEntry() throws {
        guard splitter.isAtBoundary else {
            throw ArchiveFileError("\(file): entry \(name ?? "") ends inside a record")
        }
    }

    private func flushSlice() throws {
        guard !slice.isEmpty else { return }
        try restore.blobData(Data(slice))
        slice.removeAll(keepingCapacity: true)
    }

    /// Sends the batch. `holdingRun`: keeps back the records at its end identical to its last
    /// one (unless that is all of it) for the next batch. Identical rows of a keyless join
    /// table share one key, and a restore refuses a record whose key exists already: split
    /// across two batches, the second copy would meet the first, restored a moment before.
    private func flushBatch(holdingRun: Bool = false) throws {
        guard !batch.isEmpty else { return }
        var end = batch.count
        if holdingRun, let last = batch.last {
            while end > 0, batch[end - 1] == last { end -= 1 }
            if end == 0 { end = batch.count }
        }
        try restore.insert(Array(batch[..<end]), into: entry)
        batch.removeFirst(end)
        pendingBytes = batch.reduce(0) { $0 + $1.utf8.count }
    }
}
