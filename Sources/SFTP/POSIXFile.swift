#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An open local file whose failures are `Failure`: an `SFTPError` for the files a transfer
/// reads or writes, a `BackupSiteError` for a `file://` site's. Wraps a POSIX descriptor;
/// closed by `close()` or on deinit.
package final class POSIXFile<Failure: Error> {
    private var descriptor: Int32
    package let path: String
    /// The error for a failed call, by the call's name; made while `errno` still holds its code.
    private let failure: (_ function: String) -> Failure

    /// Wraps `open` (always with `O_CLOEXEC`).
    package init(
        path: String, flags: Int32, mode: mode_t = 0o600, failure: @escaping (_ function: String) -> Failure
    ) throws(Failure) {
        self.path = path
        self.failure = failure
        descriptor = open(path, flags | O_CLOEXEC, mode)
        if descriptor < 0 { throw failure("open") }
    }

    deinit { if descriptor >= 0 { _ = posixClose(descriptor) } }

    /// Reads up to `buffer.count` bytes; 0 at the end. Wraps `read`, retrying on `EINTR`.
    package func read(into buffer: UnsafeMutableRawBufferPointer) throws(Failure) -> Int {
        while true {
            let count = posixRead(descriptor, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            if errno != EINTR { throw failure("read") }
        }
    }

    /// Writes all of `bytes`. Wraps `write`, looping over partial writes.
    package func write(_ bytes: UnsafeRawBufferPointer) throws(Failure) {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let count = posixWrite(descriptor, base + offset, bytes.count - offset)
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("write")
            }
            offset += count
        }
    }

    /// Wraps `fsync`.
    package func sync() throws(Failure) {
        if fsync(descriptor) != 0 { throw failure("fsync") }
    }

    /// Wraps `fstat`.
    package func size() throws(Failure) -> Int64 {
        var info = stat()
        if fstat(descriptor, &info) != 0 { throw failure("fstat") }
        return Int64(info.st_size)
    }

    /// Wraps `close`.
    package func close() throws(Failure) {
        let closing = descriptor
        descriptor = -1
        if posixClose(closing) != 0 { throw failure("close") }
    }
}
