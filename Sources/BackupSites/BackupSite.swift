/// A place archives are copied to before the data they hold is deleted.
///
/// Open one per site for a whole upload run and reuse it (a new SSH session costs ≈0.3 s).
/// Blocking and confined to one thread: use it from a dedicated thread, not the cooperative pool.
public protocol BackupSite: AnyObject {
    /// The site, without secrets.
    var url: BackupSiteURL { get }

    /// Copies `localFile` to `name` in `url.path` so that `name` only ever holds a complete,
    /// flushed file (temporary name, fsync, rename, size check). Returns the stored size.
    /// Idempotent: an existing `name` of the same size is success; of another size, an error.
    func upload(localFile: String, name: String) throws -> Int64

    /// The size of `name` in `url.path`, or nil when there is no such file.
    func size(of name: String) throws -> Int64?

    /// Removes `name` from `url.path`; succeeds when it is already gone.
    func remove(_ name: String) throws

    /// Copies `name` from `url.path` into `localPath`, which must not exist yet; returns the
    /// bytes copied. The caller verifies the content and gives the copy its final name. A
    /// file larger than `atMost` bytes is refused (with no more than that read).
    func download(_ name: String, to localPath: String, atMost: Int64) throws -> Int64

    /// Removes what uploads that died (a killed worker, a dropped connection) left behind:
    /// regular files named as temporary uploads (`isTemporaryName`) not modified for `age`.
    /// A live upload writes continually, so it is never taken. One that cannot be removed is
    /// skipped. Returns the names removed; throws only when the directory cannot be listed.
    func removeAbandonedUploads(olderThan age: Duration) throws -> [String]

    /// Releases the connection; the site may not be used afterwards.
    func close()
}

/// Opens backup sites and retries their operations.
public enum BackupSites {
    /// Opens the site `url` names: connects and logs in for `sftp` (checking the host key),
    /// checks that the directory exists for both schemes. `timeout` bounds each network wait.
    public static func open(
        _ url: BackupSiteURL, credentials: SiteCredentials, timeout: Duration
    ) throws
        -> any BackupSite
    {
        switch url.scheme {
        case .file: try LocalDirectorySite(url: url)
        case .sftp: try SFTPSite(url: url, credentials: credentials, timeout: timeout)
        }
    }
}

/// Whether `name` is a plain file name that cannot be mistaken for a temporary file.
func isPlainName(_ name: String) -> Bool {
    !name.isEmpty && !name.contains("/") && !name.hasPrefix(".") && !name.utf8.contains(0)
}

/// Checks that `name` is a plain file name (`isPlainName`).
func validateName(_ name: String, site: BackupSiteURL) throws(BackupSiteError) {
    if !isPlainName(name) {
        throw BackupSiteError(
            .invalidName,
            "invalid archive name \"\(name)\" for \(site): expected a file name without \"/\" that does not start with \".\""
        )
    }
}

/// Whether `entry` is a temporary name as an upload of an archive writes it
/// (`SFTPSession.temporaryName(for:)`): `.`, a plain name ending in `.zip`, `.`, 1 to 16
/// lowercase hex digits, `.part`. Nothing else on a site is ever taken for one.
func isTemporaryName(_ entry: String) -> Bool {
    guard entry.hasPrefix("."), entry.hasSuffix(".part") else { return false }
    let inner = entry.dropFirst().dropLast(".part".count)
    guard let dot = inner.lastIndex(of: ".") else { return false }
    let (name, random) = (String(inner[..<dot]), inner.utf8[inner.index(after: dot)...])
    guard (1...16).contains(random.count),
        random.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
    else { return false }
    return isPlainName(name) && name.hasSuffix(".zip")
}

/// A directory entry as `removeAbandonedUploads` weighs it.
struct SiteEntry {
    var name: String
    /// Seconds since 1970, by the site's clock.
    var modified: Int64?
    var isRegularFile: Bool
}

/// Of `entries`, the temporary files not modified for `age` at `now`.
func abandonedUploads(_ entries: [SiteEntry], olderThan age: Duration, now: Int64) -> [String] {
    entries.compactMap { entry in
        guard entry.isRegularFile, isTemporaryName(entry.name), let modified = entry.modified,
            now - modified >= age.components.seconds
        else { return nil }
        return entry.name
    }
}
