/// Who to log in as, how, and which host keys to trust.
public struct SFTPCredentials: Sendable {
    /// How the user proves who they are.
    public enum Authentication: Sendable {
        /// An ed25519 or ECDSA private key file (OpenSSH or PEM format), optionally encrypted.
        /// libssh2 1.10 signs RSA keys with SHA-1, which OpenSSH 9 refuses.
        case privateKey(path: String, passphrase: String?)
        case password(String)
    }

    public var user: String
    public var authentication: Authentication
    /// An OpenSSH known_hosts file holding the server's host key(s).
    public var knownHostsPath: String

    public init(user: String, authentication: Authentication, knownHostsPath: String) {
        self.user = user
        self.authentication = authentication
        self.knownHostsPath = knownHostsPath
    }
}

extension SFTPCredentials: CustomStringConvertible {
    /// Names the user and the method, never the password or passphrase.
    public var description: String {
        switch authentication {
        case .privateKey(let path, let passphrase):
            "\(user) with key \(path)\(passphrase == nil ? "" : " (passphrase set)")"
        case .password: "\(user) with a password"
        }
    }
}
