import Foundation

/// One entry of a ZIP as `ZipReader.nextEntry()` reports it.
public struct ZipEntryInfo: Sendable, Equatable {
    /// The entry's path inside the ZIP (UTF-8).
    public var name: String
    /// The uncompressed size, when the ZIP records it (the central directory always does).
    public var size: Int64?
    /// True when the entry's data is encrypted (`archive_entry_is_encrypted`). libarchive
    /// stores an entry of known size 0 unencrypted.
    public var isEncrypted: Bool
    /// The modification time, to the second, when the ZIP records one.
    public var modified: Date?

    /// Makes an entry description from its parts.
    public init(name: String, size: Int64?, isEncrypted: Bool, modified: Date? = nil) {
        self.name = name
        self.size = size
        self.isEncrypted = isEncrypted
        self.modified = modified
    }
}
