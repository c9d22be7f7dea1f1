import CLibSSH2

/// SFTP status codes (`LIBSSH2_FX_*`) and their names, for messages.
enum SFTPStatus {
    static let noSuchFile = Int32(LIBSSH2_FX_NO_SUCH_FILE)
    static let noSuchPath = Int32(LIBSSH2_FX_NO_SUCH_PATH)

    /// `LIBSSH2_FX_NO_CONNECTION` and `LIBSSH2_FX_CONNECTION_LOST`.
    static func isConnectionLost(_ code: Int32) -> Bool {
        code == Int32(LIBSSH2_FX_NO_CONNECTION) || code == Int32(LIBSSH2_FX_CONNECTION_LOST)
    }

    static func isMissing(_ code: Int32) -> Bool { code == noSuchFile || code == noSuchPath }

    /// A short name for an SFTP status code, e.g. "no such file".
    static func name(_ code: Int32) -> String {
        switch UInt(code) {
        case LIBSSH2_FX_EOF: return "end of file"
        case LIBSSH2_FX_NO_SUCH_FILE: return "no such file"
        case LIBSSH2_FX_PERMISSION_DENIED: return "permission denied"
        case LIBSSH2_FX_FAILURE: return "failure"
        case LIBSSH2_FX_BAD_MESSAGE: return "bad message"
        case LIBSSH2_FX_NO_CONNECTION: return "no connection"
        case LIBSSH2_FX_CONNECTION_LOST: return "connection lost"
        case LIBSSH2_FX_OP_UNSUPPORTED: return "operation unsupported"
        case LIBSSH2_FX_NO_SUCH_PATH: return "no such path"
        case LIBSSH2_FX_FILE_ALREADY_EXISTS: return "file already exists"
        case LIBSSH2_FX_WRITE_PROTECT: return "write protected"
        case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM: return "no space on file system"
        case LIBSSH2_FX_QUOTA_EXCEEDED: return "quota exceeded"
        case LIBSSH2_FX_DIR_NOT_EMPTY: return "directory not empty"
        case LIBSSH2_FX_NOT_A_DIRECTORY: return "not a directory"
        default: return "status \(code)"
        }
    }
}
