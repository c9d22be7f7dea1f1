import CLibSSH2

/// An open SFTP file handle. Wraps `LIBSSH2_SFTP_HANDLE`; closed by `close()` or on deinit.
/// Must not outlive its session (the session's methods close it before returning).
final class RemoteFile {
    private var handle: OpaquePointer?
    private unowned let session: SFTPSession
    let path: String

    /// Opens `path` with `LIBSSH2_FXF_*` `flags`. Wraps `libssh2_sftp_open_ex`.
    init(session: SFTPSession, path: String, flags: Int32, mode: Int32 = 0o600, what: String) throws(SFTPError) {
        self.session = session
        self.path = path
        let sftp = try session.channel(for: what)
        guard let handle = CLibSSH2_sftp_open(sftp, path, UInt(flags), Int(mode)) else {
            throw session.failure(session.lastErrno(), .sftp, "libssh2_sftp_open_ex", what)
        }
        self.handle = handle
    }

    /// Offers `bytes`, which must start at the first byte the server has not acknowledged,
    /// and returns how many of them are now acknowledged (at least one unless `bytes` is
    /// empty). libssh2 sends what it has not queued yet ahead as write requests. Wraps `libssh2_sftp_write`.
    func writeAhead(_ bytes: UnsafeRawBufferPointer) throws(SFTPError) -> Int {
        guard let handle, let base = bytes.baseAddress?.assumingMemoryBound(to: CChar.self) else { return 0 }
        let written = libssh2_sftp_write(handle, base, bytes.count)
        if written < 0 {
            throw session.failure(Int32(written), .io, "libssh2_sftp_write", "writing \(session.location(path)) failed")
        }
        return written
    }

    /// Reads up to `buffer.count` bytes; 0 at the end of the file. Wraps `libssh2_sftp_read`.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(SFTPError) -> Int {
        guard let handle, let base = buffer.baseAddress?.assumingMemoryBound(to: CChar.self) else { return 0 }
        let count = libssh2_sftp_read(handle, base, buffer.count)
        if count < 0 {
            throw session.failure(Int32(count), .io, "libssh2_sftp_read", "reading \(session.location(path)) failed")
        }
        return count
    }

    /// Asks the server to flush the file to disk (`fsync@openssh.com`). Wraps `libssh2_sftp_fsync`.
    func fsync() throws(SFTPError) {
        guard let handle else { return }
        try session.check(
            libssh2_sftp_fsync(handle), .sftp, "libssh2_sftp_fsync", "fsync of \(session.location(path)) failed")
    }

    /// Closes the handle, reporting the server's answer. Wraps `libssh2_sftp_close_handle`.
    func close() throws(SFTPError) {
        guard let handle else { return }
        self.handle = nil
        try session.check(
            libssh2_sftp_close_handle(handle), .sftp, "libssh2_sftp_close_handle",
            "closing \(session.location(path)) failed")
    }

    deinit {
        if let handle { _ = libssh2_sftp_close_handle(handle) }
    }
}
