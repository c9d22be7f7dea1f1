import CLibSSH2

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One authenticated SSH connection with its SFTP channel.
///
/// Every call blocks (at most `timeout` per network wait), so use a session on a dedicated
/// thread, never on Swift's cooperative pool; it is confined to that thread (not Sendable).
/// Wraps `LIBSSH2_SESSION` and `LIBSSH2_SFTP`; closed by `close()` or on deinit.
public final class SFTPSession {
    /// The server, as `host:port`, for messages.
    public let endpoint: String
    private let user: String
    private var connection: TCPConnection?
    private var session: OpaquePointer?
    private var sftp: OpaquePointer?
    /// False once the connection broke or timed out: the session is then useless, open a new one.
    public private(set) var isConnected = false

    /// Connects, checks the host key against `credentials.knownHosts`, logs in and starts
    /// SFTP. The host key is checked before any credential is sent.
    public init(
        host: String, port: Int, credentials: SFTPCredentials, timeout: Duration = .seconds(30)
    )
        throws(SFTPError)
    {
        endpoint = "\(host):\(port)"
        user = credentials.user
        try LibSSH2.initialize()
        guard let session = CLibSSH2_session_init() else {
            throw SFTPError(.io, "cannot allocate an SSH session for \(endpoint)", function: "libssh2_session_init_ex")
        }
        self.session = session
        do throws(SFTPError) {
            libssh2_session_set_blocking(session, 1)
            // The default, 0, waits forever for a silent server.
            libssh2_session_set_timeout(session, max(1, Int(milliseconds(timeout))))
            let knownHosts = try KnownHosts(session: session, source: credentials.knownHosts)
            let pinned = try preferKnownHostKeyTypes(
                knownHosts, host: host, port: port, path: "\(credentials.knownHosts)")

            let connection = try TCPConnection(host: host, port: port, timeout: timeout)
            self.connection = connection
            isConnected = true
            let note = pinned.isEmpty ? "" : " (offering only the host key types \(credentials.knownHosts) lists)"
            try check(
                libssh2_session_handshake(session, connection.descriptor), .handshake, "libssh2_session_handshake",
                "SSH handshake with \(endpoint) failed\(note)")
            try knownHosts.verify(session: session, host: host, port: port)
            try authenticate(credentials)
            guard let sftp = libssh2_sftp_init(session) else {
                throw failure(lastErrno(), .sftp, "libssh2_sftp_init", "cannot start SFTP on \(endpoint)")
            }
            self.sftp = sftp
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// Ends the SFTP channel and the connection, and frees both; later calls throw. Safe to call
    /// twice. Wraps `libssh2_sftp_shutdown`, `libssh2_session_disconnect_ex` and `libssh2_session_free`.
    public func close() {
        if let sftp { _ = libssh2_sftp_shutdown(sftp) }
        sftp = nil
        if let session {
            if isConnected { _ = CLibSSH2_session_disconnect(session, "done") }
            _ = libssh2_session_free(session)
        }
        session = nil
        connection?.close()
        connection = nil
        isConnected = false
    }

    /// Pins the host key algorithms to the types known_hosts holds for this host: libssh2
    /// prefers ECDSA and would otherwise report an ed25519-only host as unknown.
    /// Wraps `libssh2_session_method_pref`.
    /// Returns the algorithms pinned, empty when known_hosts holds none for this host.
    private func preferKnownHostKeyTypes(
        _ knownHosts: KnownHosts, host: String, port: Int, path: String
    )
        throws(SFTPError) -> [String]
    {
        guard let session else { return [] }
        let algorithms = knownHosts.knownAlgorithms(host: host, port: port)
        // None known: negotiate as usual, so the error names the key the server offers.
        guard !algorithms.isEmpty else { return [] }
        let rc = libssh2_session_method_pref(session, LIBSSH2_METHOD_HOSTKEY, algorithms.joined(separator: ","))
        if rc != 0 {
            throw SFTPError(
                .handshake,
                "cannot prefer host key types \(algorithms) from \(path) for \(endpoint): \(lastError(session))",
                function: "libssh2_session_method_pref", code: rc)
        }
        return algorithms
    }

    /// Wraps `libssh2_userauth_publickey_fromfile_ex`, `libssh2_userauth_publickey_frommemory`
    /// (the public key derived from the private one) and `libssh2_userauth_password_ex`.
    private func authenticate(_ credentials: SFTPCredentials) throws(SFTPError) {
        guard let session else { return }
        let login = "\(credentials.user)@\(endpoint)"
        switch credentials.authentication {
        case .privateKey(let path, let passphrase):
            let rc = CLibSSH2_userauth_publickey_fromfile(session, credentials.user, nil, path, passphrase)
            try check(
                rc, .authentication, "libssh2_userauth_publickey_fromfile_ex",
                "key login as \(login) with \(path) failed")
        case .privateKeyContents(let key, let passphrase):
            let bytes = Array(key.utf8)
            let rc = bytes.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) {
                    libssh2_userauth_publickey_frommemory(
                        session, credentials.user, credentials.user.utf8.count, nil, 0, $0.baseAddress, $0.count,
                        passphrase)
                }
            }
            try check(
                rc, .authentication, "libssh2_userauth_publickey_frommemory",
                "key login as \(login) with the stored key failed")
        case .password(let password):
            let rc = CLibSSH2_userauth_password(session, credentials.user, password)
            try check(rc, .authentication, "libssh2_userauth_password_ex", "password login as \(login) failed")
        }
    }

    /// The SFTP channel, or an error when the session was closed.
    func channel(for what: @autoclosure () -> String) throws(SFTPError) -> OpaquePointer {
        guard let sftp, isConnected else {
            throw SFTPError(.io, "\(what()): the session to \(endpoint) is closed or broken", isTransient: true)
        }
        return sftp
    }

    /// Throws `failure(rc, …)` unless `rc` is 0.
    func check(
        _ rc: Int32, _ kind: SFTPError.Kind, _ function: String, _ what: @autoclosure () -> String
    )
        throws(SFTPError)
    {
        if rc != 0 { throw failure(rc, kind, function, what()) }
    }

    /// The error for libssh2 result `rc` (negative): a time-out or broken connection (which
    /// marks the session unusable), an SFTP status, or `kind` for everything else.
    /// Wraps `libssh2_sftp_last_error`.
    func failure(_ rc: Int32, _ kind: SFTPError.Kind, _ function: String, _ what: String) -> SFTPError {
        let text = session.map(lastError) ?? "no session"
        if rc == LIBSSH2_ERROR_TIMEOUT {
            markBroken()
            return SFTPError(.timeout, "\(what): \(text)", function: function, code: rc)
        }
        if LibSSH2.transportErrors.contains(rc) {
            markBroken()
            return SFTPError(.io, "\(what): connection lost: \(text)", function: function, code: rc)
        }
        if rc == LIBSSH2_ERROR_SFTP_PROTOCOL, let sftp {
            let status = Int32(truncatingIfNeeded: libssh2_sftp_last_error(sftp))
            if SFTPStatus.isConnectionLost(status) { markBroken() }
            return SFTPError(.sftp, "\(what): \(SFTPStatus.name(status))", function: function, code: status)
        }
        return SFTPError(kind, "\(what): \(text)", function: function, code: rc)
    }

    /// The code of the session's last error, for calls that return NULL. Wraps `libssh2_session_last_errno`.
    func lastErrno() -> Int32 {
        session.map { libssh2_session_last_errno($0) } ?? LIBSSH2_ERROR_SOCKET_NONE
    }

    /// Marks the session unusable and cuts the socket: on a timed-out connection, libssh2's
    /// goodbye messages (close handle, close channel, disconnect) would each wait the full timeout.
    private func markBroken() {
        isConnected = false
        if let connection { _ = shutdown(connection.descriptor, Int32(SHUT_RDWR)) }
    }

    /// `user@host:port:path`, for messages.
    func location(_ path: String) -> String { "\(user)@\(endpoint):\(path)" }
}

@available(*, unavailable, message: "an SFTPSession is confined to the thread that uses it")
extension SFTPSession: Sendable {}
