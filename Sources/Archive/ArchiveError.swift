/// An error from libarchive, from a system call beneath it, or from misuse of this module.
///
/// `description` is safe to log: `message` is libarchive's (or `strerror`'s) text, and the
/// passphrase never enters an error (libarchive only ever receives it through
/// `archive_write_set_passphrase` and `archive_read_add_passphrase`, which do not echo it).
public struct ArchiveError: Error, CustomStringConvertible, Equatable {
    /// The libarchive function (or system call, or `ZipWriter.…` API for misuse) that failed,
    /// e.g. `archive_read_data_block`.
    public var function: String
    /// `archive_errno` (an `errno` value or `ARCHIVE_ERRNO_MISC`), or the return code when
    /// libarchive set no errno; `EINVAL` for misuse.
    public var code: Int32
    /// libarchive's `archive_error_string`, or `strerror`'s text; never the passphrase.
    public var message: String
    /// True when reading failed because the passphrase is wrong or missing.
    public var isWrongPassphrase: Bool

    /// Makes an error from its parts; the module makes these itself, tests may too.
    public init(function: String, code: Int32, message: String, isWrongPassphrase: Bool = false) {
        self.function = function
        self.code = code
        self.message = message
        self.isWrongPassphrase = isWrongPassphrase
    }

    /// One line for a log: function, message and code.
    public var description: String {
        "\(function) failed: \(message) (code \(code))"
    }
}
