import CLibSSH2

extension SFTPSession {
    /// The size of the file at `path`, or nil when there is none. Wraps `libssh2_sftp_stat_ex`.
    public func stat(_ path: String) throws(SFTPError) -> Int64? {
        let what = "stat of \(location(path)) failed"
        let sftp = try channel(for: what)
        var attributes = LIBSSH2_SFTP_ATTRIBUTES()
        let rc = CLibSSH2_sftp_stat(sftp, path, &attributes)
        if rc != 0 {
            let error = failure(rc, .sftp, "libssh2_sftp_stat_ex", what)
            if error.kind == .sftp, let code = error.code, SFTPStatus.isMissing(code) { return nil }
            throw error
        }
        guard attributes.flags & UInt(LIBSSH2_SFTP_ATTR_SIZE) != 0 else {
            throw SFTPError(.sftp, "\(what): the server sent no size", function: "libssh2_sftp_stat_ex")
        }
        return Int64(attributes.filesize)
    }

    /// The entries of the directory `path` ("." and ".." left out), with their modification
    /// times where the server sends them. Wraps `libssh2_sftp_open_ex` and `libssh2_sftp_readdir_ex`.
    public func list(_ path: String) throws(SFTPError) -> [SFTPDirectoryEntry] {
        let what = "listing \(location(path)) failed"
        let sftp = try channel(for: what)
        guard let handle = CLibSSH2_sftp_opendir(sftp, path) else {
            throw failure(lastErrno(), .sftp, "libssh2_sftp_open_ex", what)
        }
        defer { _ = libssh2_sftp_close_handle(handle) }
        var entries: [SFTPDirectoryEntry] = []
        var name = [CChar](repeating: 0, count: 4096)
        while true {
            var attributes = LIBSSH2_SFTP_ATTRIBUTES()
            let count = name.withUnsafeMutableBufferPointer {
                libssh2_sftp_readdir_ex(handle, $0.baseAddress, $0.count, nil, 0, &attributes)
            }
            if count == 0 { break }
            if count < 0 { throw failure(count, .sftp, "libssh2_sftp_readdir_ex", what) }
            // A name that is not UTF-8 could not be named back to the server: left out.
            guard let text = String(validating: name[0..<Int(count)].map { UInt8(bitPattern: $0) }, as: UTF8.self),
                text != ".", text != ".."
            else { continue }
            let hasTimes = attributes.flags & UInt(LIBSSH2_SFTP_ATTR_ACMODTIME) != 0
            let hasMode = attributes.flags & UInt(LIBSSH2_SFTP_ATTR_PERMISSIONS) != 0
            entries.append(
                SFTPDirectoryEntry(
                    name: text, modified: hasTimes ? Int64(attributes.mtime) : nil,
                    isRegularFile: hasMode
                        ? attributes.permissions & UInt(LIBSSH2_SFTP_S_IFMT) == UInt(LIBSSH2_SFTP_S_IFREG) : nil))
        }
        return entries
    }

    /// Removes the file at `path`; throws `.sftp` (code 2, no such file) when there is none.
    /// Wraps `libssh2_sftp_unlink_ex`.
    public func remove(_ path: String) throws(SFTPError) {
        let what = "removing \(location(path)) failed"
        let sftp = try channel(for: what)
        try check(CLibSSH2_sftp_unlink(sftp, path), .sftp, "libssh2_sftp_unlink_ex", what)
    }

    /// Creates the directory `path` (mode 0750); succeeds when it already exists.
    /// Wraps `libssh2_sftp_mkdir_ex`.
    public func makeDirectory(_ path: String) throws(SFTPError) {
        let what = "creating directory \(location(path)) failed"
        let sftp = try channel(for: what)
        let rc = CLibSSH2_sftp_mkdir(sftp, path, 0o750)
        guard rc != 0 else { return }
        let error = failure(rc, .sftp, "libssh2_sftp_mkdir_ex", what)
        // OpenSSH answers an existing directory with a bare "failure".
        if error.kind == .sftp, try stat(path) != nil { return }
        throw error
    }

    /// Renames `from` to `to`, which must not exist (SFTP v3 servers refuse to replace it).
    /// Wraps `libssh2_sftp_rename_ex`.
    func rename(_ from: String, to: String) throws(SFTPError) {
        let what = "renaming \(location(from)) to \(to) failed"
        let sftp = try channel(for: what)
        try check(CLibSSH2_sftp_rename(sftp, from, to), .sftp, "libssh2_sftp_rename_ex", what)
    }
}

/// One entry of a remote directory.
public struct SFTPDirectoryEntry: Sendable, Equatable {
    public var name: String
    /// Seconds since 1970 (the server's clock), when the server sent it.
    public var modified: Int64?
    /// Whether it is a regular file, when the server sent its mode.
    public var isRegularFile: Bool?
}
