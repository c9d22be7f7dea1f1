/// A backup site URL that cannot be used. `description` quotes the value (with any password
/// replaced by `***`) and says what is accepted.
public struct BackupSiteURLError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String

    init(_ description: String) { self.description = description }

    /// The forms `BackupSiteURL(parsing:)` accepts.
    static let accepted = "expected sftp://USER@HOST[:PORT]/PATH or file:///PATH"
    static let acceptedSFTP = "expected sftp://USER@HOST[:PORT]/PATH"

    static func malformed(_ text: String) -> Self {
        Self("malformed backup site \(quoted(text)): \(accepted)")
    }
}

/// `text` in double quotes with a URL password masked, so that no message ever repeats it.
func quoted(_ text: String) -> String {
    "\"\(BackupSiteURL.redacted(text))\""
}
