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

/// Checks that `name` is a plain file name that cannot be mistaken for a temporary file.
func validateName(_ name: String, site: BackupSiteURL) throws(BackupSiteError) {
    if name.isEmpty || name.contains("/") || name.hasPrefix(".") || name.utf8.contains(0) {
        throw BackupSiteError(
            .invalidName,
            "invalid archive name \"\(name)\" for \(site): expected a file name without \"/\" that does not start with \".\""
        )
    }
}

/// `.<name>.<random hex>.part`, the temporary name an upload writes before renaming.
func temporaryName(for name: String) -> String {
    ".\(name).\(String(UInt64.random(in: .min ... .max), radix: 16)).part"
}
