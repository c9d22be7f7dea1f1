/// Where a backup site lives: `sftp://USER@HOST[:PORT]/PATH` (port 22 by default) or
/// `file:///PATH`; PATH is absolute and names the directory archives go into.
///
/// A password in the URL is refused: it would end up in configuration files, logs and `ps`.
public struct BackupSiteURL: Sendable, Hashable, CustomStringConvertible {
    /// The transport.
    public enum Scheme: Sendable, Hashable {
        case sftp, file
    }

    public var scheme: Scheme
    /// The login, for `sftp`.
    public var user: String?
    /// The host name or address (IPv6 without brackets), for `sftp`.
    public var host: String?
    /// The TCP port, for `sftp` (22 unless given); 0 for `file`.
    public var port: Int
    /// The absolute directory path, without a trailing slash (except "/").
    public var path: String

    /// Parses and checks `text`; the error quotes it and says what is accepted.
    public init(parsing text: String) throws(BackupSiteURLError) {
        // "host:/path" (scp style), "sftp:/x" and bare paths all lack "://".
        guard let separator = text.firstRange(of: "://") else { throw .malformed(text) }
        let scheme = text[..<separator.lowerBound]
        let rest = text[separator.upperBound...]
        switch scheme.lowercased() {
        case "sftp": self = try Self.parseSFTP(rest, text: text)
        case "file": self = try Self.parseFile(rest, text: text)
        case _ where Self.isScheme(scheme) && !scheme.isEmpty: throw Self.unsupportedScheme(String(scheme), in: text)
        default: throw .malformed(text)
        }
    }

    /// The URL without any secret: `sftp://user@host[:port]/path` (port only when not 22) or `file:///path`.
    public var description: String {
        switch scheme {
        case .file:
            return "file://\(path)"
        case .sftp:
            let hostText = (host ?? "").contains(":") ? "[\(host ?? "")]" : (host ?? "")
            let portText = port == 22 ? "" : ":\(port)"
            return "sftp://\(user ?? "")@\(hostText)\(portText)\(path)"
        }
    }

    private static func parseSFTP(_ rest: Substring, text: String) throws(BackupSiteURLError) -> BackupSiteURL {
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        guard let at = authority.lastIndex(of: "@") else {
            throw BackupSiteURLError(
                "backup site \(quoted(text)) names no user: \(BackupSiteURLError.acceptedSFTP)")
        }
        let user = authority[..<at]
        if user.contains(":") {
            throw BackupSiteURLError(
                "backup site \(quoted(text)) contains a password: remove it from the URL and use a password file instead"
            )
        }
        guard !user.isEmpty, !user.contains(where: { $0.isWhitespace || $0 == "@" }) else {
            throw BackupSiteURLError(
                "backup site \(quoted(text)) has an invalid user \"\(user)\": \(BackupSiteURLError.acceptedSFTP)")
        }
        let (host, port) = try parseHostPort(authority[authority.index(after: at)...], text: text)
        guard slash < rest.endIndex else {
            throw BackupSiteURLError(
                "backup site \(quoted(text)) has no path: \(BackupSiteURLError.acceptedSFTP) with an absolute PATH")
        }
        let path = try checkedPath(rest[slash...], text: text)
        return BackupSiteURL(scheme: .sftp, user: String(user), host: host, port: port, path: path)
    }

    private static func parseHostPort(_ hostPort: Substring, text: String) throws(BackupSiteURLError) -> (String, Int) {
        var host = hostPort
        var portText: Substring?
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw .malformed(text) }
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") {
                portText = after.dropFirst()
            } else if !after.isEmpty {
                throw .malformed(text)
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = hostPort[..<colon]
            portText = hostPort[hostPort.index(after: colon)...]
        }
        guard !host.isEmpty, !host.contains(where: { $0.isWhitespace || $0 == "/" || $0 == "@" }) else {
            throw BackupSiteURLError(
                "backup site \(quoted(text)) names no valid host: \(BackupSiteURLError.acceptedSFTP)")
        }
        guard let portText else { return (String(host), 22) }
        guard let port = Int(portText), portText.allSatisfy(\.isASCII), (1...65535).contains(port) else {
            throw BackupSiteURLError(
                "backup site \(quoted(text)) has port \"\(portText)\": expected a number from 1 to 65535")
        }
        return (String(host), port)
    }

    private static func parseFile(_ rest: Substring, text: String) throws(BackupSiteURLError) -> BackupSiteURL {
        guard rest.hasPrefix("/") else {
            let named = rest.prefix { $0 != "/" }
            let host = named.lastIndex(of: "@").map { "***" + named[$0...] } ?? String(named)
            throw BackupSiteURLError(
                "backup site \(quoted(text)) names host \"\(host)\": expected file:///PATH (three slashes and an absolute PATH)"
            )
        }
        return BackupSiteURL(scheme: .file, user: nil, host: nil, port: 0, path: try checkedPath(rest, text: text))
    }

    /// An absolute path without query, fragment or trailing slash.
    private static func checkedPath(_ path: Substring, text: String) throws(BackupSiteURLError) -> String {
        if let bad = path.first(where: { $0 == "?" || $0 == "#" }) {
            throw BackupSiteURLError(
                "backup site \(quoted(text)) contains \"\(bad)\": \(BackupSiteURLError.accepted), without query or fragment"
            )
        }
        var trimmed = path
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        return String(trimmed)
    }

    private static func unsupportedScheme(_ scheme: String, in text: String) -> BackupSiteURLError {
        BackupSiteURLError(
            "unsupported backup site scheme \"\(scheme)\" in \(quoted(text)): \(BackupSiteURLError.accepted)")
    }

    private static func isScheme(_ text: Substring) -> Bool {
        text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }
    }

    private init(scheme: Scheme, user: String?, host: String?, port: Int, path: String) {
        self.scheme = scheme
        self.user = user
        self.host = host
        self.port = port
        self.path = path
    }

    /// `text` with the password of a `scheme://user:password@…` URL replaced by `***`.
    static func redacted(_ text: String) -> String {
        guard let separator = text.firstRange(of: "://") else { return text }
        let rest = text[separator.upperBound...]
        // The password may hold `/` (which ends the authority in a well-formed URL): the user
        // info runs to the last `@`, wherever it is.
        guard let at = rest.lastIndex(of: "@"), let colon = rest[..<at].firstIndex(of: ":") else {
            return text
        }
        return String(text[..<text.index(after: colon)]) + "***" + String(text[at...])
    }
}
