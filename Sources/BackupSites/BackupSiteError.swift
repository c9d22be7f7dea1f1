/// An error of a `file://` site, or of a site's configuration. `message` names the path and
/// never holds a secret.
public struct BackupSiteError: Error, CustomStringConvertible, Sendable, TransientError {
    /// What went wrong.
    public enum Kind: Sendable {
        /// The site cannot be used as configured (no credentials, no such directory).
        case configuration
        /// An archive name that is not a plain file name.
        case invalidName
        /// A system call failed (see `function` and `code`).
        case io
        /// The stored file's size differs from the local file's.
        case sizeMismatch
        /// The name already holds a file of a different size.
        case exists
    }

    public var kind: Kind
    /// The system call that failed.
    public var function: String?
    /// `errno` of that call.
    public var code: Int32?
    public var message: String
    /// True for errors a retry may cure (EIO, ETIMEDOUT, ESTALE on network file systems…).
    public var isTransient: Bool

    public init(_ kind: Kind, _ message: String, function: String? = nil, code: Int32? = nil, isTransient: Bool = false)
    {
        self.kind = kind
        self.message = message
        self.function = function
        self.code = code
        self.isTransient = isTransient
    }

    public var description: String {
        "backup site \(kind): \(message)"
            + (function.map { " (\($0)" + (code.map { " errno \($0)" } ?? "") + ")" } ?? "")
    }
}
