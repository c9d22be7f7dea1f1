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
