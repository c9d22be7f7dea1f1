#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A connected TCP socket; closed by `close()` or on deinit.
final class TCPConnection {
    private(set) var descriptor: Int32

    /// Resolves `host` and connects to the first address that answers within `timeout`,
    /// with a non-blocking `connect` and `poll`. Wraps `getaddrinfo`, `socket`, `connect`.
    init(host: String, port: Int, timeout: Duration) throws(SFTPError) {
        let endpoint = "\(host):\(port)"
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
            hints.ai_socktype = SOCK_STREAM
        #endif
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            let reason = rc == 0 ? "no address" : String(cString: gai_strerror(rc))
            throw SFTPError(
                .resolve, "cannot resolve \(endpoint): \(reason)", function: "getaddrinfo", code: rc,
                isTransient: rc == EAI_AGAIN)
        }
        defer { freeaddrinfo(list) }

        let deadline = ContinuousClock.now + timeout
        var lastError = SFTPError(.connect, "cannot connect to \(endpoint)")
        var next: UnsafeMutablePointer<addrinfo>? = first
        while let address = next {
            next = address.pointee.ai_next
            do {
                descriptor = try Self.attempt(address.pointee, endpoint: endpoint, timeout: timeout, deadline: deadline)
                return
            } catch {
                lastError = error
                if error.kind == .timeout { break }
            }
        }
        throw lastError
    }

    /// Connects to one address; returns the blocking, connected socket.
    private static func attempt(
        _ address: addrinfo, endpoint: String, timeout: Duration, deadline: ContinuousClock.Instant
    ) throws(SFTPError) -> Int32 {
        #if canImport(Glibc)
            let type = address.ai_socktype | Int32(SOCK_CLOEXEC.rawValue)
        #else
            let type = address.ai_socktype
        #endif
        let fd = socket(address.ai_family, type, address.ai_protocol)
        guard fd >= 0 else { throw posixError(.connect, "socket", endpoint) }
        var ok = false
        defer { if !ok { closeDescriptor(fd) } }

        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        if connect(fd, address.ai_addr, address.ai_addrlen) != 0 {
            guard errno == EINPROGRESS else { throw posixError(.connect, "connect", endpoint) }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            while true {
                let ready = poll(&pfd, 1, milliseconds(ContinuousClock.now.duration(to: deadline)))
                if ready < 0 && errno == EINTR { continue }
                if ready < 0 { throw posixError(.connect, "poll", endpoint) }
                if ready == 0 {
                    throw SFTPError(
                        .timeout, "connecting to \(endpoint) timed out after \(timeout)", function: "connect")
                }
                break
            }
            var soError: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length)
            if soError != 0 {
                throw SFTPError(
                    .connect, "cannot connect to \(endpoint): \(String(cString: strerror(soError)))",
                    function: "connect", code: soError)
            }
        }
        _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        ok = true
        return fd
    }

    /// Closes the socket once. Wraps `close`.
    func close() {
        if descriptor >= 0 {
            closeDescriptor(descriptor)
            descriptor = -1
        }
    }

    deinit { close() }
}

/// An `SFTPError` for a failed POSIX call, from `errno`.
func posixError(_ kind: SFTPError.Kind, _ function: String, _ subject: String) -> SFTPError {
    let code = errno
    return SFTPError(
        kind, "\(function) for \(subject) failed: \(String(cString: strerror(code)))", function: function, code: code)
}

/// Closes a file descriptor, ignoring errors. Wraps `close`.
func closeDescriptor(_ fd: Int32) {
    _ = close(fd)
}

/// A duration in whole milliseconds for `poll` and libssh2, at least 0.
func milliseconds(_ duration: Duration) -> Int32 {
    let (seconds, attoseconds) = duration.components
    return Int32(clamping: max(0, seconds * 1000 + attoseconds / 1_000_000_000_000_000))
}
