import CLibArchive
import Foundation

/// Writes one ZIP file: WinZip AES-256 (`zip:encryption=aes256`), deflate at `compressionLevel`
/// (default 1: `zip:compression-level=1`; 0 stores), entries of unknown size streamed (data
/// descriptor/Zip64), in constant memory: libarchive hands the file whole blocks of
/// `blockSize` bytes through a write callback, and the last block unpadded.
///
/// libarchive writes WinZip AES as **AE-1**: the CRC-32 of the plaintext is stored beside the
/// HMAC-SHA1 of the ciphertext (AE-2, without the CRC, only for entries of known size under
/// 20 bytes). Names, sizes and times are not encrypted. An empty entry is stored as a plain
/// entry of size 0: libarchive 3.6.2 would write an empty *encrypted* entry without its AES
/// header (salt, verifier, HMAC), which no reader accepts, so `ZipWriter` defers the header of
/// an entry of unknown size until its first byte.
///
/// An entry begun with `.storeIfIncompressible` (blob contents: recordings, images, anything
/// already compressed) is **stored** when its first bytes do not look compressible
/// (`looksIncompressible`): deflate would only cost time there (on this machine AES-256 alone
/// writes about 60 MB/s, deflate level 1 plus AES about 20 MB/s on random bytes, and the
/// deflated entry is larger). libarchive switches the method between entries
/// (`archive_write_zip_set_compression_store`/`_deflate`), never within one.
///
/// Not Sendable: confined to the thread that made it. Every call blocks on file I/O, so run
/// it on a thread of your own, never on Swift's cooperative pool.
public final class ZipWriter {
    /// The block size given to `archive_write_set_bytes_per_block`: the memory the writer
    /// buffers and the granularity at which `bytesWritten` grows.
    public static let blockSize = 1 << 20

    /// The handle; nil once closed. (Internal, like the state below, for ZipWriter+Entries.)
    var archive: OpaquePointer?
    let sink: FileSink
    var entry: Entry?
    let compressionLevel: Int
    /// Whether the last entry finished was stored because it looked incompressible
    /// (`.storeIfIncompressible`); false for deflated entries and at level 0.
    public internal(set) var lastEntryStored = false
    /// The first libarchive failure; the ZIP cannot be finished after it.
    var failure: ArchiveError?
    private var closeResult: Result<Void, ArchiveError>?

    /// How an entry's bytes are compressed.
    public enum EntryCompression: Sendable {
        /// Deflate at the writer's level (stored at level 0).
        case deflate
        /// Stored if its first bytes look incompressible (`looksIncompressible`), else deflate.
        /// Decided when the header goes out, so only for an entry of unknown size.
        case storeIfIncompressible
    }

    /// The open entry: what its header needs, and how much data it has had.
    struct Entry {
        var name: String
        var declaredSize: Int64?
        var modified: Date
        var compression: EntryCompression
        var written: Int64 = 0
        var isHeaderWritten = false
        /// Set with the header: the entry's bytes go into the ZIP uncompressed.
        var isStored = false
    }

    /// Creates the file exclusively (`O_CREAT|O_EXCL`, mode 0600; throws if it exists) and
    /// starts the ZIP. Wraps `archive_write_new`, `archive_write_set_format_zip`,
    /// `archive_write_set_options`, `archive_write_set_passphrase`,
    /// `archive_write_set_bytes_per_block`, `archive_write_set_bytes_in_last_block` and
    /// `archive_write_open2`. On failure the new file is removed again.
    public init(creatingFileAt path: String, passphrase: String, compressionLevel: Int = 1) throws {
        try ArchiveError.validate(passphrase: passphrase, in: "ZipWriter.init")
        guard (0...9).contains(compressionLevel) else {
            throw ArchiveError.usage("ZipWriter.init", "compression level \(compressionLevel) is not in 0...9")
        }
        let sink = try FileSink(creatingFileAt: path)
        guard let archive = archive_write_new() else {
            sink.discard()
            throw ArchiveError(function: "archive_write_new", code: ENOMEM, message: "out of memory")
        }
        do {
            try Self.configure(archive, passphrase: passphrase, level: compressionLevel)
            let clientData = Unmanaged.passUnretained(sink).toOpaque()
            try check("archive_write_open2", archive) {
                archive_write_open2(archive, clientData, nil, { FileSink.writeCallback($0, $1, $2, $3) }, nil, nil)
            }
        } catch {
            sink.abandon()
            archive_write_free(archive)
            sink.discard()
            throw error
        }
        self.archive = archive
        self.sink = sink
        self.compressionLevel = compressionLevel
    }

    private static func configure(_ archive: OpaquePointer, passphrase: String, level: Int) throws(ArchiveError) {
        try check("archive_write_set_format_zip", archive) { archive_write_set_format_zip(archive) }
        for option in ["zip:encryption=aes256", "zip:compression-level=\(level)", "zip:hdrcharset=UTF-8"] {
            try check("archive_write_set_options", archive) { archive_write_set_options(archive, option) }
        }
        try check("archive_write_set_passphrase", archive) { archive_write_set_passphrase(archive, passphrase) }
        try check("archive_write_set_bytes_per_block", archive) {
            archive_write_set_bytes_per_block(archive, Int32(blockSize))
        }
        try check("archive_write_set_bytes_in_last_block", archive) {
            archive_write_set_bytes_in_last_block(archive, 1)
        }
    }

    /// Frees the archive handle if `close()` was never called, leaving the partial file as it
    /// is: the sink is abandoned first, so `archive_write_free` cannot finish the ZIP.
    deinit {
        guard let archive else { return }
        sink.abandon()
        archive_write_free(archive)
    }

    /// Bytes handed to the file so far (counted in the write callback), for split decisions.
    /// It grows a block at a time, so it trails the data written by up to `blockSize`.
    public var bytesWritten: Int64 { sink.bytesWritten }

    /// Finishes the open entry and the ZIP (central directory), then fsyncs and closes the
    /// file. Idempotent: later calls return (or throw) what the first returned. After an
    /// earlier failure it leaves the partial file and throws. Wraps `archive_write_close`,
    /// `archive_write_free`, `fsync` and `close`.
    public func close() throws {
        if let closeResult { return try closeResult.get() }
        let result = Result { () throws(ArchiveError) in try finish() }
        closeResult = result
        try result.get()
    }

    private func finish() throws(ArchiveError) {
        guard let archive else { return }
        defer { self.archive = nil }
        do throws(ArchiveError) {
            if entry != nil { try finishCurrentEntry() }
            if let failure {
                throw ArchiveError(
                    function: "ZipWriter.close", code: failure.code,
                    message: "the ZIP is incomplete after \(failure.function) failed: \(failure.message)")
            }
            try check("archive_write_close", archive) { archive_write_close(archive) }
        } catch {
            sink.abandon()
            archive_write_free(archive)
            throw error
        }
        archive_write_free(archive)
        try sink.synchronizeAndClose()
    }

    /// The archive handle, or a usage error once the writer is closed.
    func usable(_ function: String) throws(ArchiveError) -> OpaquePointer {
        guard let archive else { throw .usage(function, "the writer is closed") }
        return archive
    }

    /// Runs a libarchive call and remembers its failure: a half-written ZIP cannot be finished.
    @discardableResult
    func recording<T>(_ call: () throws(ArchiveError) -> T) throws(ArchiveError) -> T {
        do { return try call() } catch { throw record(error) }
    }

    func record(_ error: ArchiveError) -> ArchiveError {
        if failure == nil { failure = error }
        return error
    }
}
