/// How to log in to a backup site and which host keys to trust; unused by `file://` sites.
///
/// Secrets (passphrase, password) come from files or the environment, never from the URL.
public struct SiteCredentials: Sendable {
    /// A private key file (ed25519 or ECDSA), preferred over `password` when both are set.
    public var identityFile: String?
    public var identityPassphrase: String?
    public var password: String?
    /// An OpenSSH known_hosts file; `$HOME/.ssh/known_hosts` when nil.
    public var knownHostsFile: String?
    /// The private key file's contents (stored in the database): used instead of `identityFile`.
    public var identity: String?
    /// The known_hosts lines (stored in the database): used instead of `knownHostsFile`.
    public var knownHosts: String?

    public init(
        identityFile: String? = nil, identityPassphrase: String? = nil, password: String? = nil,
        knownHostsFile: String? = nil, identity: String? = nil, knownHosts: String? = nil
    ) {
        self.identity = identity
        self.knownHosts = knownHosts
        self.identityFile = identityFile
        self.identityPassphrase = identityPassphrase
        self.password = password
        self.knownHostsFile = knownHostsFile
    }
}

extension SiteCredentials: CustomStringConvertible {
    /// Says which secrets are set, never what they are.
    public var description: String {
        var parts: [String] = []
        if identity != nil {
            parts.append("stored identity" + (identityPassphrase == nil ? "" : " (passphrase set)"))
        } else if let identityFile {
            parts.append("identity \(identityFile)" + (identityPassphrase == nil ? "" : " (passphrase set)"))
        }
        if password != nil { parts.append("password set") }
        parts.append(knownHosts != nil ? "stored known hosts" : "known hosts \(knownHostsFile ?? "~/.ssh/known_hosts")")
        return parts.joined(separator: ", ")
    }
}
