/// A failure reading, checking or restoring an archive file (exit 1); the message names
/// the file and entry, never the key or row contents.
public struct ArchiveFileError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Archive files that do not go together as given (another job's part, a part missing or
/// given twice): the caller's mistake, a usage error (exit 2).
public struct ArchivePartsError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
