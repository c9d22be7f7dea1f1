/// The archive key for each file: one key for every file, or the key of the account each
/// file's name gives. `source` says where a key came from, for messages; the key itself is
/// never shown.
public struct ArchiveKeys: Sendable {
    public struct Key: Sendable {
        public var secret: String
        public var source: String

        public init(secret: String, source: String) {
            self.secret = secret
            self.source = source
        }
    }

    private var single: Key?
    private var byAccount: [String: Key] = [:]

    /// One key for every file.
    public init(single: Key) { self.single = single }

    /// Per account: the key of the account each file's name gives (every file's account is here).
    public init(byAccount: [String: Key]) { self.byAccount = byAccount }

    public func key(for file: ArchiveFile) -> Key {
        if let single { return single }
        return byAccount[file.account!]!
    }
}
