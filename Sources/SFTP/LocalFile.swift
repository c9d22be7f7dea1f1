#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A local file an upload reads or a download writes.
typealias LocalFile = POSIXFile<SFTPError>

extension POSIXFile where Failure == SFTPError {
    /// Opens `path`; its failures name `endpoint` and are not transient (retrying the same
    /// file fails the same way).
    convenience init(path: String, flags: Int32, endpoint: String) throws(SFTPError) {
        try self.init(path: path, flags: flags) { function in
            let code = errno
            return SFTPError(
                .io,
                "local file \(path) (transfer with \(endpoint)): \(function) failed: \(String(cString: strerror(code)))",
                function: function, code: code, isTransient: false)
        }
    }
}
