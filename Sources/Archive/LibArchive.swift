import CLibArchive

/// The libarchive library Lethe links against. The AES-256 ZIP writer and reader build on
/// this module (see the archive issue); this is its first piece.
public enum LibArchive {
    /// The runtime library's version line, e.g. `libarchive 3.6.2 zlib/1.2.13 …`.
    /// Wraps `archive_version_details`.
    public static var versionDetails: String {
        archive_version_details().map { String(cString: $0) } ?? "unknown"
    }

    /// True when this libarchive can write WinZip AES-256 encrypted ZIP entries.
    /// Wraps `archive_write_new`, `archive_write_set_format_zip` and `archive_write_set_options`.
    public static var supportsAES256Zip: Bool {
        guard let archive = archive_write_new() else { return false }
        defer { archive_write_free(archive) }
        guard archive_write_set_format_zip(archive) == ARCHIVE_OK else { return false }
        return archive_write_set_options(archive, "zip:encryption=aes256") == ARCHIVE_OK
    }
}
