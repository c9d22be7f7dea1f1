import SFTP

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An open file of a `file://` site.
typealias Descriptor = POSIXFile<BackupSiteError>

extension POSIXFile where Failure == BackupSiteError {
    /// Opens `path`; its failures are `LocalDirectorySite.error`s naming it.
    convenience init(_ path: String, _ flags: Int32, mode: mode_t = 0o600) throws(BackupSiteError) {
        try self.init(path: path, flags: flags, mode: mode) { LocalDirectorySite.error($0, path) }
    }
}
