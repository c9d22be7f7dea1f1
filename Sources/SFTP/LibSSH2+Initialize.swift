import CLibSSH2

extension LibSSH2 {
    /// The result of the process's one `libssh2_init(0)`; a Swift static is initialised once,
    /// thread-safely, on first use. Wraps `libssh2_init`.
    private static let initialization: Int32 = libssh2_init(0)

    /// Initialises libssh2 the first time it is called; later calls only return the result.
    static func initialize() throws(SFTPError) {
        let rc = initialization
        if rc != 0 {
            throw SFTPError(.io, "libssh2_init failed", function: "libssh2_init", code: rc, isTransient: false)
        }
    }
}
