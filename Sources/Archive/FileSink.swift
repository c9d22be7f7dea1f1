import CLibArchive

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The file a `ZipWriter` writes: a descriptor it created, the count of bytes handed to it,
/// and libarchive's write callback. Confined to the writer's thread, like the writer.
///
/// The callback gets this object (not the writer) through `client_data`, so that a writer's
/// `deinit` can first `abandon()` the sink — every later callback then fails — and only then
/// call `archive_write_free`, which would otherwise finish the ZIP from inside `deinit`.
final class FileSink {
    private let path: String
    private var descriptor: Int32
    /// Bytes written to the file so far.
    private(set) var bytesWritten: Int64 = 0

    /// Creates the file exclusively (`O_CREAT | O_EXCL`, mode 0600). Wraps `open`.
    init(creatingFileAt path: String) throws(ArchiveError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw .posix("open", errno, path: path) }
        self.path = path
        self.descriptor = descriptor
    }

    deinit {
        if descriptor >= 0 { _ = close(descriptor) }
    }

    /// Writes all of `bytes`, retrying short writes and `EINTR`; returns the `errno` of a
    /// failure, or `EBADF` once the sink is closed or abandoned. Wraps `write`.
    func writeAll(_ bytes: UnsafeRawBufferPointer) -> Int32? {
        guard descriptor >= 0 else { return EBADF }
        var offset = 0
        while offset < bytes.count {
            let count = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if count < 0 {
                if errno == EINTR { continue }
                return errno
            }
            offset += count
            bytesWritten += Int64(count)
        }
        return nil
    }

    /// Flushes the file to disk and closes it. Wraps `fsync` and `close`.
    func synchronizeAndClose() throws(ArchiveError) {
        guard descriptor >= 0 else { return }
        let descriptor = self.descriptor
        self.descriptor = -1
        if fsync(descriptor) != 0 {
            let error = ArchiveError.posix("fsync", errno, path: path)
            _ = close(descriptor)
            throw error
        }
        if close(descriptor) != 0 { throw .posix("close", errno, path: path) }
    }

    /// Closes the file without syncing it; what was written stays, later writes fail.
    func abandon() {
        guard descriptor >= 0 else { return }
        _ = close(descriptor)
        descriptor = -1
    }

    /// Abandons the file and removes it; for a writer that failed before writing anything.
    func discard() {
        abandon()
        _ = unlink(path)
    }

    /// libarchive's write callback (`archive_write_callback`); `client_data` is an unretained
    /// `FileSink`. A failure is recorded with `archive_set_error` (via `CLibArchive_set_error`),
    /// so `archive_errno` holds the `errno` and `archive_error_string` its text.
    static func writeCallback(
        _ archive: OpaquePointer?, _ clientData: UnsafeMutableRawPointer?, _ buffer: UnsafeRawPointer?, _ length: Int
    ) -> Int {
        guard let clientData, let buffer else { return -1 }
        let sink = Unmanaged<FileSink>.fromOpaque(clientData).takeUnretainedValue()
        if let failure = sink.writeAll(UnsafeRawBufferPointer(start: buffer, count: length)) {
            CLibArchive_set_error(archive, failure, "write: \(String(cString: strerror(failure)))")
            return -1
        }
        return length
    }
}
