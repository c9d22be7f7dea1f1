import SFTP

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An open file of a `file://` site. Wraps a POSIX descriptor; closed by `close()` or on deinit.
final class Descriptor {
    private var fd: Int32
    let path: String

    /// Wraps `open`.
    init(_ path: String, _ flags: Int32, mode: mode_t = 0o600) throws(BackupSiteError) {
        self.path = path
        fd = open(path, flags | O_CLOEXEC, mode)
        if fd < 0 { throw LocalDirectorySite.error("open", path) }
    }

    deinit { if fd >= 0 { _ = posixClose(fd) } }

    /// Wraps `read`; 0 at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(BackupSiteError) -> Int {
        while true {
            let count = posixRead(fd, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            if errno != EINTR { throw LocalDirectorySite.error("read", path) }
        }
    }

    /// Wraps `write`, looping over partial writes.
    func write(_ bytes: UnsafeRawBufferPointer) throws(BackupSiteError) {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let count = posixWrite(fd, base + offset, bytes.count - offset)
            if count < 0 {
                if errno == EINTR { continue }
                throw LocalDirectorySite.error("write", path)
            }
            offset += count
        }
    }

    /// Wraps `fsync`.
    func sync() throws(BackupSiteError) {
        if fsync(fd) != 0 { throw LocalDirectorySite.error("fsync", path) }
    }

    /// Wraps `fstat`.
    func size() throws(BackupSiteError) -> Int64 {
        var info = stat()
        if fstat(fd, &info) != 0 { throw LocalDirectorySite.error("fstat", path) }
        return Int64(info.st_size)
    }

    /// Wraps `close`.
    func close() throws(BackupSiteError) {
        let descriptor = fd
        fd = -1
        if posixClose(descriptor) != 0 { throw LocalDirectorySite.error("close", path) }
    }
}
