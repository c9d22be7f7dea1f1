import CLibArchive
import Foundation

/// Reads a ZIP sequentially, decrypting WinZip AES (and any other libarchive reads) with the
/// passphrase. A wrong or missing passphrase throws (`isWrongPassphrase`), and so does a bad
/// HMAC, CRC or size at an entry's end (libarchive reports those as mere warnings): the
/// reader never hands out zero-filled or unverified data silently — but the last chunk of an
/// entry is only verified when it is read, so treat an entry as good only after its end.
///
/// Not Sendable: confined to the thread that made it; every call blocks on file I/O.
public final class ZipReader {
    private var archive: OpaquePointer?
    /// The thread locale for header reads, so that UTF-8 names survive a "C" process locale.
    private let locale = UTF8Locale()
    /// The part of libarchive's last data block not yet copied out, and its entry offset.
    private var block = UnsafeRawBufferPointer(start: nil, count: 0)
    private var blockOffset: Int64 = 0
    /// Bytes of the current entry handed out so far.
    private var position: Int64 = 0
    private var state = State.beforeEntry

    private enum State { case beforeEntry, inEntry, entryEnd, finished }

    /// Opens the ZIP at `path` and registers the passphrase. Wraps `archive_read_new`,
    /// `archive_read_support_format_zip`, `archive_read_add_passphrase` and
    /// `archive_read_open_filename`.
    public init(openingFileAt path: String, passphrase: String) throws {
        try ArchiveError.validate(passphrase: passphrase, in: "ZipReader.init")
        guard let archive = archive_read_new() else {
            throw ArchiveError(function: "archive_read_new", code: ENOMEM, message: "out of memory")
        }
        do {
            try locale.run { () throws(ArchiveError) in
                try check("archive_read_support_format_zip", archive) { archive_read_support_format_zip(archive) }
                try check("archive_read_add_passphrase", archive) { archive_read_add_passphrase(archive, passphrase) }
                try check("archive_read_open_filename", archive) {
                    archive_read_open_filename(archive, path, ZipWriter.blockSize)
                }
            }
        } catch {
            archive_read_free(archive)
            throw error
        }
        self.archive = archive
    }

    /// Frees the archive handle if `close()` was never called.
    deinit { close() }

    /// Moves to the next entry, skipping what is left of the current one; nil at the end.
    /// The header is read in a UTF-8 thread locale (see `UTF8Locale`).
    /// Wraps `archive_read_next_header`, `archive_entry_pathname_utf8`, `archive_entry_size`,
    /// `archive_entry_is_encrypted` and `archive_entry_mtime`.
    public func nextEntry() throws -> ZipEntryInfo? {
        let archive = try usable("ZipReader.nextEntry")
        if state == .finished { return nil }
        block = UnsafeRawBufferPointer(start: nil, count: 0)
        blockOffset = 0
        position = 0
        var header: OpaquePointer?
        let status = try locale.run { () throws(ArchiveError) in
            try check("archive_read_next_header", archive) { archive_read_next_header(archive, &header) }
        }
        guard status != ARCHIVE_EOF, let header else {
            state = .finished
            return nil
        }
        state = .inEntry
        let name = (archive_entry_pathname_utf8(header) ?? archive_entry_pathname(header)).map { String(cString: $0) }
        return ZipEntryInfo(
            name: name ?? "",
            size: archive_entry_size_is_set(header) != 0 ? archive_entry_size(header) : nil,
            isEncrypted: archive_entry_is_encrypted(header) != 0,
            modified: archive_entry_mtime_is_set(header) != 0
                ? Date(timeIntervalSince1970: TimeInterval(archive_entry_mtime(header))) : nil)
    }

    /// Copies the current entry's next bytes into `buffer`; 0 at the entry's end (or for an
    /// empty buffer). Wraps `archive_read_data_block`.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let archive = try usable("ZipReader.read")
        guard state == .inEntry || state == .entryEnd else {
            throw ArchiveError.usage("ZipReader.read", "no entry is current; call nextEntry() first")
        }
        guard !buffer.isEmpty else { return 0 }
        while block.isEmpty {
            if state == .entryEnd { return 0 }
            try nextBlock(archive)
        }
        if position < blockOffset {  // a hole (sparse entry): zeros, as archive_read_data gives
            let count = Int(min(Int64(buffer.count), blockOffset - position))
            buffer.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0, count: count)
            position += Int64(count)
            return count
        }
        let count = min(buffer.count, block.count)
        buffer.baseAddress!.copyMemory(from: block.baseAddress!, byteCount: count)
        block = UnsafeRawBufferPointer(rebasing: block[count...])
        blockOffset += Int64(count)
        position += Int64(count)
        return count
    }

    /// Streams the rest of the current entry to `consume` in chunks of at most `chunkSize`
    /// bytes (each valid only during the call). Wraps `archive_read_data_block`.
    public func readEntry(chunkSize: Int = 1 << 20, _ consume: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard chunkSize > 0 else { throw ArchiveError.usage("ZipReader.readEntry", "chunkSize must be positive") }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = try read(into: buffer)
            if count == 0 { return }
            try consume(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
        }
    }

    /// Closes the file and frees the handle; idempotent. Wraps `archive_read_free`.
    public func close() {
        guard let archive else { return }
        self.archive = nil
        block = UnsafeRawBufferPointer(start: nil, count: 0)
        archive_read_free(archive)
    }

    /// Fetches libarchive's next data block of the current entry, or marks its end.
    private func nextBlock(_ archive: OpaquePointer) throws(ArchiveError) {
        var start: UnsafeRawPointer?
        var size = 0
        var offset: Int64 = 0
        let status = try check("archive_read_data_block", archive) {
            archive_read_data_block(archive, &start, &size, &offset)
        }
        if status == ARCHIVE_EOF { state = .entryEnd }
        block = UnsafeRawBufferPointer(start: start, count: start == nil ? 0 : size)
        blockOffset = offset
    }

    private func usable(_ function: String) throws(ArchiveError) -> OpaquePointer {
        guard let archive else { throw .usage(function, "the reader is closed") }
        return archive
    }
}
