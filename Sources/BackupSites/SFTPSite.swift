import SFTP

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A backup site on an SFTP server. Holds one SSH session; when the connection breaks, the
/// next call opens a new one (so `RetryPolicy.run(attempts:)` retries on a fresh connection).
final class SFTPSite: BackupSite {
    let url: BackupSiteURL
    private let host: String
    private let credentials: SFTPCredentials
    private let timeout: Duration
    private var session: SFTPSession?
    private var closed = false

    init(url: BackupSiteURL, credentials: SiteCredentials, timeout: Duration) throws {
        precondition(url.scheme == .sftp, "SFTPSite needs an sftp:// URL")
        self.url = url
        host = url.host ?? ""
        self.credentials = try Self.sftpCredentials(url: url, credentials)
        self.timeout = timeout
        guard try withSession({ session throws(SFTPError) in try session.stat(url.path) }) != nil else {
            close()
            throw BackupSiteError(.configuration, "backup directory \(url) does not exist")
        }
    }

    func upload(localFile: String, name: String) throws -> Int64 {
        try validateName(name, site: url)
        return try withSession { session throws(SFTPError) in try session.upload(from: localFile, to: remotePath(name))
        }
    }

    func size(of name: String) throws -> Int64? {
        try validateName(name, site: url)
        return try withSession { session throws(SFTPError) in try session.stat(remotePath(name)) }
    }

    func remove(_ name: String) throws {
        try validateName(name, site: url)
        let path = remotePath(name)
        try withSession { session throws(SFTPError) in try Self.removeIfPresent(path, session) }
    }

    func download(_ name: String, to localPath: String, atMost: Int64) throws -> Int64 {
        try validateName(name, site: url)
        let path = remotePath(name)
        return try withSession { session throws(SFTPError) in
            try session.download(path, to: localPath, atMost: atMost)
        }
    }

    func removeAbandonedUploads(olderThan age: Duration) throws -> [String] {
        let directory = url.path
        return try withSession { session throws(SFTPError) in
            let entries = try session.list(directory).map {
                SiteEntry(name: $0.name, modified: $0.modified, isRegularFile: $0.isRegularFile ?? false)
            }
            return abandonedUploads(entries, olderThan: age, now: Int64(time(nil))).filter { name in
                (try? Self.removeIfPresent(remotePath(name), session)) != nil
            }
        }
    }

    /// Removes `path`; succeeds when it is already gone (LIBSSH2_FX_NO_SUCH_FILE).
    private static func removeIfPresent(_ path: String, _ session: SFTPSession) throws(SFTPError) {
        do throws(SFTPError) {
            try session.remove(path)
        } catch  where error.kind == .sftp && error.code == Int32(2) {}
    }

    func close() {
        closed = true
        session?.close()
        session = nil
    }

    private func remotePath(_ name: String) -> String { url.path == "/" ? "/\(name)" : "\(url.path)/\(name)" }

    /// Runs `body` on the open session, opening one first when there is none; drops the session
    /// when `body` broke it.
    private func withSession<T>(_ body: (SFTPSession) throws(SFTPError) -> T) throws(SFTPError) -> T {
        precondition(!closed, "backup site \(url) used after close()")
        let current: SFTPSession
        if let session {
            current = session
        } else {
            current = try SFTPSession(host: host, port: url.port, credentials: credentials, timeout: timeout)
            session = current
        }
        do {
            return try body(current)
        } catch {
            if !current.isConnected {
                current.close()
                session = nil
            }
            throw error
        }
    }

    private static func sftpCredentials(
        url: BackupSiteURL, _ site: SiteCredentials
    ) throws(BackupSiteError)
        -> SFTPCredentials
    {
        let authentication: SFTPCredentials.Authentication
        if let identity = site.identity {
            authentication = .privateKeyContents(identity, passphrase: site.identityPassphrase)
        } else if let identityFile = site.identityFile {
            authentication = .privateKey(path: identityFile, passphrase: site.identityPassphrase)
        } else if let password = site.password {
            authentication = .password(password)
        } else {
            throw BackupSiteError(.configuration, "backup site \(url) has neither an identity file nor a password")
        }
        let knownHosts: KnownHostsSource
        if let lines = site.knownHosts {
            knownHosts = .text(lines, origin: "\(url)")
        } else if let file = site.knownHostsFile {
            knownHosts = .file(file)
        } else if let home = getenv("HOME") {
            knownHosts = .file(String(cString: home) + "/.ssh/known_hosts")
        } else {
            throw BackupSiteError(.configuration, "backup site \(url) has no known_hosts file and HOME is not set")
        }
        return SFTPCredentials(user: url.user ?? "", authentication: authentication, knownHosts: knownHosts)
    }
}
