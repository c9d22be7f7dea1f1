import CLibSSH2

/// The libssh2 library Lethe links against. The SFTP client that uploads archives to
/// backup sites builds on this module (see the archive issue); this is its first piece.
public enum LibSSH2 {
    /// The runtime library's version, e.g. `1.10.0`. Wraps `libssh2_version`.
    public static var version: String {
        libssh2_version(0).map { String(cString: $0) } ?? "unknown"
    }
}
