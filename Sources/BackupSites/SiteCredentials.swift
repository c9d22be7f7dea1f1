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

    public init(
        identityFile: String? = nil, identityPassphrase: String? = nil, password: String? = nil,
        knownHostsFile: String? = nil
    ) {
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
        if let identityFile {
            parts.append("identity \(identityFile)" + (identityPassphrase == nil ? "" : " (passphrase set)"))
        }
        if password != nil { parts.append("password set") }
        parts.append("known hosts \(knownHostsFile ?? "~/.ssh/known_hosts")")
        return parts.joined(separator: ", ")
    }
}
