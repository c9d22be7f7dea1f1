#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A local file an upload reads or a download writes. Wraps a POSIX descriptor; closed on deinit.
final class LocalFile {
    private var descriptor: Int32
    let path: String
    private let endpoint: String

    /// Wraps `open`.
    init(path: String, flags: Int32, endpoint: String) throws(SFTPError) {
        self.path = path
        self.endpoint = endpoint
        descriptor = open(path, flags | O_CLOEXEC, 0o600)
        if descriptor < 0 { throw localError("open") }
    }

    deinit { if descriptor >= 0 { closeDescriptor(descriptor) } }

    /// Wraps `fstat`.
    func size() throws(SFTPError) -> Int64 {
        var info = stat()
        if fstat(descriptor, &info) != 0 { throw localError("fstat") }
        return Int64(info.st_size)
    }

    /// Reads up to `buffer.count` bytes; 0 at the end. Wraps `read`.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(SFTPError) -> Int {
        while true {
            let count = posixRead(descriptor, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            if errno != EINTR { throw localError("read") }
        }
    }

    /// Writes all of `bytes`. Wraps `write`.
    func write(_ bytes: UnsafeRawBufferPointer) throws(SFTPError) {
        var offset = 0
        while offset < bytes.count {
            let count = posixWrite(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if count < 0 {
                if errno == EINTR { continue }
                throw localError("write")
            }
            offset += count
        }
    }

    /// Wraps `close`.
    func close() throws(SFTPError) {
        let fd = descriptor
        descriptor = -1
        if posixClose(fd) != 0 { throw localError("close") }
    }

    /// A local file failure: not transient (retrying the same file will fail the same way).
    private func localError(_ function: String) -> SFTPError {
        let code = errno
        return SFTPError(
            .io,
            "local file \(path) (transfer with \(endpoint)): \(function) failed: \(String(cString: strerror(code)))",
            function: function, code: code, isTransient: false)
    }
}
