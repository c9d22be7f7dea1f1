/// Who to log in as, how, and which host keys to trust.
public struct SFTPCredentials: Sendable {
    /// How the user proves who they are.
    public enum Authentication: Sendable {
        /// An ed25519 or ECDSA private key file (OpenSSH or PEM format), optionally encrypted.
        /// libssh2 1.10 signs RSA keys with SHA-1, which OpenSSH 9 refuses.
        case privateKey(path: String, passphrase: String?)
        /// The same, from the key file's contents (a key stored sealed in the database).
        case privateKeyContents(String, passphrase: String?)
        case password(String)
    }

    public var user: String
    public var authentication: Authentication
    /// The OpenSSH known_hosts lines holding the server's host key(s).
    public var knownHosts: KnownHostsSource

    public init(user: String, authentication: Authentication, knownHosts: KnownHostsSource) {
        self.user = user
        self.authentication = authentication
        self.knownHosts = knownHosts
    }

    /// With the known_hosts file at `knownHostsPath`.
    public init(user: String, authentication: Authentication, knownHostsPath: String) {
        self.init(user: user, authentication: authentication, knownHosts: .file(knownHostsPath))
    }
}

/// Where the trusted host keys come from: an OpenSSH known_hosts file, or its lines as text
/// (stored in the database), `origin` naming them in messages.
public enum KnownHostsSource: Sendable, CustomStringConvertible {
    case file(String)
    case text(String, origin: String)

    public var description: String {
        switch self {
        case .file(let path): path
        case .text(_, let origin): "known_hosts lines stored for \(origin)"
        }
    }
}

extension SFTPCredentials: CustomStringConvertible {
    /// Names the user and the method, never the password or passphrase.
    public var description: String {
        switch authentication {
        case .privateKey(let path, let passphrase):
            "\(user) with key \(path)\(passphrase == nil ? "" : " (passphrase set)")"
        case .privateKeyContents(_, let passphrase):
            "\(user) with a stored key\(passphrase == nil ? "" : " (passphrase set)")"
        case .password: "\(user) with a password"
        }
    }
}
