import CLibArchive

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// The one funnel through which this module calls libarchive: every status that means
// failure becomes an `ArchiveError` here, with the function's name and libarchive's text.

/// Runs one libarchive call that returns a status and throws unless it is `ARCHIVE_OK` or
/// `ARCHIVE_EOF`. `ARCHIVE_WARN` is a failure too: the ZIP reader uses it for a bad CRC, a bad
/// HMAC or a wrong size, and the writer for a name it could not convert.
@discardableResult
func check(_ function: String, _ archive: OpaquePointer, _ call: () -> Int32) throws(ArchiveError) -> Int32 {
    let status = call()
    guard status >= ARCHIVE_OK else { throw ArchiveError(function, archive: archive, status: Int(status)) }
    return status
}

/// Runs one libarchive call that returns a byte count and throws when it is negative.
func checkCount(_ function: String, _ archive: OpaquePointer, _ call: () -> Int) throws(ArchiveError) -> Int {
    let count = call()
    guard count >= 0 else { throw ArchiveError(function, archive: archive, status: count) }
    return count
}

extension ArchiveError {
    /// libarchive's texts for a wrong or missing passphrase (archive_read_support_format_zip.c);
    /// libarchive has no error code for them.
    static let passphraseMessages: Set<String> = [
        "Incorrect passphrase", "Passphrase required for this entry", "Too many incorrect passphrases",
    ]

    /// The error libarchive recorded on `archive` after `function` returned `status`.
    /// Wraps `archive_errno` and `archive_error_string`.
    init(_ function: String, archive: OpaquePointer, status: Int) {
        let errno = archive_errno(archive)
        let message = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
        self.init(
            function: function, code: errno != 0 ? errno : Int32(clamping: status), message: message,
            isWrongPassphrase: Self.passphraseMessages.contains(message))
    }

    /// A failed system call, with `strerror`'s text and, when given, the path it concerned.
    static func posix(_ function: String, _ errno: Int32, path: String? = nil) -> ArchiveError {
        let text = String(cString: strerror(errno))
        return ArchiveError(function: function, code: errno, message: path.map { "\($0): \(text)" } ?? text)
    }

    /// A misuse of this module's API (a programmer error reported as a thrown error).
    static func usage(_ function: String, _ message: String) -> ArchiveError {
        ArchiveError(function: function, code: EINVAL, message: message)
    }

    /// Rejects an empty passphrase, or one libarchive would silently cut at a NUL byte.
    /// The message never quotes the passphrase.
    static func validate(passphrase: String, in function: String) throws(ArchiveError) {
        if passphrase.isEmpty { throw .usage(function, "the passphrase is empty") }
        if passphrase.utf8.contains(0) { throw .usage(function, "the passphrase contains a NUL byte") }
    }
}
