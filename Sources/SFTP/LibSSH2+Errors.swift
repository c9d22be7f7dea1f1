import CLibSSH2

extension LibSSH2 {
    /// libssh2 error codes meaning the connection itself failed, after which the session is unusable.
    static let transportErrors: Set<Int32> = [
        LIBSSH2_ERROR_SOCKET_NONE, LIBSSH2_ERROR_BANNER_RECV, LIBSSH2_ERROR_BANNER_SEND,
        LIBSSH2_ERROR_SOCKET_SEND, LIBSSH2_ERROR_SOCKET_DISCONNECT, LIBSSH2_ERROR_SOCKET_TIMEOUT,
        LIBSSH2_ERROR_SOCKET_RECV, LIBSSH2_ERROR_BAD_SOCKET, LIBSSH2_ERROR_CHANNEL_CLOSED,
        LIBSSH2_ERROR_CHANNEL_EOF_SENT, LIBSSH2_ERROR_DECRYPT, LIBSSH2_ERROR_ENCRYPT,
        LIBSSH2_ERROR_INVALID_MAC,
    ]
}

/// libssh2's text for the session's last error. Wraps `libssh2_session_last_error`.
func lastError(_ session: OpaquePointer) -> String {
    var text: UnsafeMutablePointer<CChar>?
    var length: Int32 = 0
    _ = libssh2_session_last_error(session, &text, &length, 0)
    guard let text, length > 0 else { return "unknown error" }
    return String(cString: text)
}
