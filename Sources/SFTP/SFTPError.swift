/// An error from an SSH connection or one of its SFTP operations.
///
/// `message` names the host, port and remote path and is safe to log: passwords,
/// passphrases and key material never enter it.
public struct SFTPError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, independent of libssh2's wording.
    public enum Kind: Sendable {
        /// The host name did not resolve.
        case resolve
        /// The TCP connection failed (refused, unreachable, reset).
        case connect
        /// A connect or a libssh2 call ran out of time.
        case timeout
        /// The SSH handshake (key exchange) failed.
        case handshake
        /// The server's host key is not in known_hosts, or known_hosts is unreadable.
        case hostKeyUnknown
        /// known_hosts lists another key of this type for the host.
        case hostKeyMismatch
        /// The server refused the user's key or password.
        case authentication
        /// The SFTP server answered an operation with an error status (see `code`).
        case sftp
        /// The connection broke during an operation, or a local file failed.
        case io
        /// The uploaded file's size differs from the local file's.
        case sizeMismatch
        /// The remote name already holds a different file.
        case exists
    }

    public var kind: Kind
    /// The libssh2 (or POSIX) function that failed.
    public var function: String?
    /// libssh2's error code, the SFTP status code (for `.sftp`), or `errno` for POSIX calls.
    public var code: Int32?
    /// What failed, naming host:port and the remote path; never a secret.
    public var message: String
    /// Whether retrying (on a new connection) may help: true for connection failures and
    /// time-outs, false for host key, authentication and size problems.
    public var isTransient: Bool

    public init(_ kind: Kind, _ message: String, function: String? = nil, code: Int32? = nil, isTransient: Bool? = nil)
    {
        self.kind = kind
        self.message = message
        self.function = function
        self.code = code
        self.isTransient = isTransient ?? Self.defaultTransience(kind, code: code)
    }

    public var description: String {
        var text = "sftp \(kind): \(message)"
        if let function {
            text += " (\(function)" + (code.map { " \($0)" } ?? "") + ")"
        }
        return text
    }

    /// Whether the SSH connection is unusable after this error, so the next attempt must
    /// open a new session.
    public var isConnectionLost: Bool {
        switch kind {
        case .connect, .timeout, .io, .handshake: return true
        case .sftp: return code.map(SFTPStatus.isConnectionLost) ?? false
        default: return false
        }
    }

    private static func defaultTransience(_ kind: Kind, code: Int32?) -> Bool {
        switch kind {
        case .connect, .timeout, .io: return true
        case .sftp: return code.map(SFTPStatus.isConnectionLost) ?? false
        case .resolve, .handshake, .hostKeyUnknown, .hostKeyMismatch, .authentication, .sizeMismatch, .exists:
            return false
        }
    }
}
