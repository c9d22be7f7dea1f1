import CLibSSH2

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The host keys of an OpenSSH known_hosts file, as libssh2 reads them. Wraps
/// `LIBSSH2_KNOWNHOSTS`; freed on deinit. Lives only as long as the session it belongs to.
final class KnownHosts {
    private let handle: OpaquePointer
    private let path: String

    /// The host key algorithms libssh2 can check, with the known_hosts key type bit of each,
    /// in the order we prefer them.
    static let algorithms: [(name: String, knownHostType: Int32)] = [
        ("ssh-ed25519", LIBSSH2_KNOWNHOST_KEY_ED25519),
        ("ecdsa-sha2-nistp256", LIBSSH2_KNOWNHOST_KEY_ECDSA_256),
        ("ecdsa-sha2-nistp384", LIBSSH2_KNOWNHOST_KEY_ECDSA_384),
        ("ecdsa-sha2-nistp521", LIBSSH2_KNOWNHOST_KEY_ECDSA_521),
        ("ssh-rsa", LIBSSH2_KNOWNHOST_KEY_SSHRSA),
    ]

    /// Reads `source` for `session`. Wraps `libssh2_knownhost_init`, and
    /// `libssh2_knownhost_readfile` for a file or `libssh2_knownhost_readline` for stored lines.
    init(session: OpaquePointer, source: KnownHostsSource) throws(SFTPError) {
        let path = "\(source)"
        // libssh2 reports an unreadable file only as "Failed to open file": say why ourselves.
        if case .file(let file) = source, access(file, R_OK) != 0 {
            let code = errno
            throw SFTPError(
                .hostKeyUnknown, "cannot read known_hosts file \(file): \(String(cString: strerror(code)))",
                function: "access", code: code, isTransient: false)
        }
        guard let handle = libssh2_knownhost_init(session) else {
            throw SFTPError(.io, "cannot allocate known hosts", function: "libssh2_knownhost_init", isTransient: false)
        }
        self.handle = handle
        self.path = path
        switch source {
        case .file(let file):
            let rc = libssh2_knownhost_readfile(handle, file, LIBSSH2_KNOWNHOST_FILE_OPENSSH)
            if rc < 0 {
                throw SFTPError(
                    .hostKeyUnknown, "cannot parse known_hosts file \(file): \(lastError(session))",
                    function: "libssh2_knownhost_readfile", code: rc, isTransient: false)
            }
        case .text(let text, _):
            // "\r\n" is one Character in Swift: splitting on "\n" alone leaves a CRLF text one line.
            let lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
            for (number, line) in lines.enumerated() {
                let trimmed = line.hasSuffix("\r") ? line.dropLast() : line
                if trimmed.allSatisfy({ $0 == " " || $0 == "\t" }) || trimmed.first == "#" { continue }
                let bytes = Array(trimmed.utf8)
                let rc = bytes.withUnsafeBufferPointer { buffer in
                    buffer.withMemoryRebound(to: CChar.self) {
                        libssh2_knownhost_readline(handle, $0.baseAddress, $0.count, LIBSSH2_KNOWNHOST_FILE_OPENSSH)
                    }
                }
                if rc < 0 {
                    throw SFTPError(
                        .hostKeyUnknown, "cannot parse line \(number + 1) of the \(path): \(lastError(session))",
                        function: "libssh2_knownhost_readline", code: rc, isTransient: false)
                }
            }
        }
    }

    deinit { libssh2_knownhost_free(handle) }

    /// The algorithm names (for `libssh2_session_method_pref`) of the key types this file
    /// holds for `host`:`port`, hashed entries included.
    ///
    /// libssh2 has no call for this, so each type is probed with a key no host has:
    /// `libssh2_knownhost_checkp` answers MISMATCH exactly when an entry of that type exists
    /// for the name, NOTFOUND when none does.
    func knownAlgorithms(host: String, port: Int) -> [String] {
        let probe: [CChar] = Array("lethe-host-type-probe".utf8CString)
        return Self.algorithms.filter { algorithm in
            probe.withUnsafeBufferPointer { key in
                check(
                    host: host, port: port, key: key.baseAddress!, length: key.count - 1, type: algorithm.knownHostType)
                    == LIBSSH2_KNOWNHOST_CHECK_MISMATCH
            }
        }.map(\.name)
    }

    /// Checks the server key of `session` against the file. Wraps `libssh2_session_hostkey`,
    /// `libssh2_knownhost_checkp` and `libssh2_hostkey_hash`.
    func verify(session: OpaquePointer, host: String, port: Int) throws(SFTPError) {
        let endpoint = "\(host):\(port)"
        var length = 0
        var type: Int32 = 0
        guard let key = libssh2_session_hostkey(session, &length, &type) else {
            throw SFTPError(
                .handshake, "no host key from \(endpoint): \(lastError(session))", function: "libssh2_session_hostkey")
        }
        guard let knownHostType = Self.knownHostType(hostKeyType: type) else {
            throw SFTPError(
                .hostKeyUnknown, "\(endpoint) offered a host key of unsupported type \(type)",
                function: "libssh2_session_hostkey", code: type)
        }
        let fingerprint = Self.fingerprint(session: session)
        switch check(host: host, port: port, key: key, length: length, type: knownHostType) {
        case LIBSSH2_KNOWNHOST_CHECK_MATCH:
            return
        case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
            throw SFTPError(
                .hostKeyMismatch,
                "host key of \(endpoint) (\(fingerprint)) differs from the one in \(path): refusing to log in",
                function: "libssh2_knownhost_checkp", code: LIBSSH2_KNOWNHOST_CHECK_MISMATCH)
        case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
            throw SFTPError(
                .hostKeyUnknown,
                "host key of \(endpoint) (\(fingerprint)) is not in \(path) (looked up as \(Self.name(host, port)))",
                function: "libssh2_knownhost_checkp", code: LIBSSH2_KNOWNHOST_CHECK_NOTFOUND)
        case let rc:
            throw SFTPError(
                .hostKeyUnknown, "cannot check the host key of \(endpoint) against \(path): \(lastError(session))",
                function: "libssh2_knownhost_checkp", code: rc)
        }
    }

    /// `[host]:port` as known_hosts writes it when the port is not 22.
    static func name(_ host: String, _ port: Int) -> String { port == 22 ? host : "[\(host)]:\(port)" }

    private func check(host: String, port: Int, key: UnsafePointer<CChar>, length: Int, type: Int32) -> Int32 {
        // With port -1 libssh2 looks up the plain name only; with a port, "[host]:port" and then "host".
        let typemask = LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | type
        return libssh2_knownhost_checkp(handle, host, port == 22 ? -1 : Int32(port), key, length, typemask, nil)
    }

    private static func knownHostType(hostKeyType: Int32) -> Int32? {
        switch hostKeyType {
        case LIBSSH2_HOSTKEY_TYPE_ED25519: LIBSSH2_KNOWNHOST_KEY_ED25519
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: LIBSSH2_KNOWNHOST_KEY_ECDSA_256
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: LIBSSH2_KNOWNHOST_KEY_ECDSA_384
        case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: LIBSSH2_KNOWNHOST_KEY_ECDSA_521
        case LIBSSH2_HOSTKEY_TYPE_RSA: LIBSSH2_KNOWNHOST_KEY_SSHRSA
        default: nil
        }
    }

    /// The server key's SHA-256 fingerprint as OpenSSH prints it (`SHA256:…`), for messages.
    private static func fingerprint(session: OpaquePointer) -> String {
        guard let hash = libssh2_hostkey_hash(session, LIBSSH2_HOSTKEY_HASH_SHA256) else { return "no fingerprint" }
        let bytes = UnsafeRawBufferPointer(start: hash, count: 32)
        return "SHA256:" + base64(bytes).filter { $0 != "=" }
    }
}

/// Standard base64 of `bytes`, padded.
func base64(_ bytes: UnsafeRawBufferPointer) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out: [UInt8] = []
    var index = 0
    while index < bytes.count {
        let chunk = (0..<3).map { index + $0 < bytes.count ? UInt32(bytes[index + $0]) : 0 }
        let value = chunk[0] << 16 | chunk[1] << 8 | chunk[2]
        let available = min(3, bytes.count - index)
        for position in 0..<4 {
            out.append(
                position <= available ? alphabet[Int(value >> (18 - 6 * UInt32(position)) & 63)] : UInt8(ascii: "="))
        }
        index += 3
    }
    return String(decoding: out, as: UTF8.self)
}
