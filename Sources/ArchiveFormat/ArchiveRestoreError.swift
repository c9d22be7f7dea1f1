/// A restore that cannot go on, or must not commit; the message names tables and keys,
/// never row contents.
public struct ArchiveRestoreError: Error, CustomStringConvertible {
    /// `configuration`: the archive does not fit the registry (a usage error); `conflict`:
    /// rows with the archive's keys exist.
    public enum Kind: Sendable { case configuration, conflict }
    public var kind: Kind
    public var description: String
    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}
