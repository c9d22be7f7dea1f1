/// The `archive.*` settings of the configuration, as one value: the CLI reads and checks them
/// once, and the archive task handler and its packer take them as they are. A new archive
/// setting is added here, read in `Configuration.archiveOptions()` (LetheConfiguration), and
/// used where it matters.
public struct ArchiveOptions: Sendable {
    /// Seals archive keys and site secrets; nil when none is configured.
    public var masterKey: MasterKey?
    /// Where parts are written before upload (absolute).
    public var spoolDirectory: String
    /// Where a part closes and the next begins, in bytes.
    public var splitSize: Int64
    /// The deflate level, 1 to 9.
    public var compressionLevel: Int
    /// Most expired roots of one entity type one archive job takes.
    public var maxRootsPerType: Int
    /// Roots planned per transaction: bounds how long planning holds one snapshot.
    public var planChunkRoots: Int = 5_000
    /// Bound on each network wait of a backup site.
    public var siteTimeout: Duration
    /// Tries per file and site on transient errors, the first included.
    public var uploadAttempts: Int
    /// Keep a job's spool files after its rows are deleted.
    public var keepLocal: Bool
    /// Lock and statement timeouts of each deletion batch (`retention.*`).
    public var deletionTimeouts = DeletionTimeouts.standard

    public init(
        masterKey: MasterKey? = nil, spoolDirectory: String, splitSize: Int64 = 2_000_000_000,
        compressionLevel: Int = 1, maxRootsPerType: Int = 1_000_000, siteTimeout: Duration = .seconds(30),
        uploadAttempts: Int = 3, keepLocal: Bool = false
    ) {
        self.masterKey = masterKey
        self.spoolDirectory = spoolDirectory
        self.splitSize = splitSize
        self.compressionLevel = compressionLevel
        self.maxRootsPerType = maxRootsPerType
        self.siteTimeout = siteTimeout
        self.uploadAttempts = uploadAttempts
        self.keepLocal = keepLocal
    }
}
