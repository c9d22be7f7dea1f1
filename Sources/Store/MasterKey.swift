import Crypto
import Foundation

/// The operator's master key: 32 random bytes that seal archive keys and site secrets
/// (AES-256-GCM, bound to what they belong to), so the database never holds them in plain
/// text. Read from a file or the environment; never logged.
public struct MasterKey: Sendable {
    private let key: SymmetricKey
    /// A fingerprint that names the key in `lethe.archive_settings.master_key_id` and in
    /// errors (the first 8 bytes of an HMAC of a fixed label): it tells keys apart and
    /// reveals nothing of them.
    public let id: String

    /// The key from its text form: 64 hex digits or base64 of 32 bytes (surrounding
    /// whitespace ignored). `source` names where it came from in errors.
    public init(text: String, source: String) throws(MasterKeyError) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        var bytes: [UInt8]?
        if trimmed.count == 64, trimmed.allSatisfy(\.isHexDigit) {
            bytes = stride(from: 0, to: 64, by: 2).map { offset in
                let start = trimmed.index(trimmed.startIndex, offsetBy: offset)
                return UInt8(trimmed[start..<trimmed.index(start, offsetBy: 2)], radix: 16)!
            }
        } else if let data = Data(base64Encoded: trimmed), data.count == 32 {
            bytes = Array(data)
        }
        guard let bytes else {
            throw MasterKeyError(
                "the master key in \(source) is not 32 bytes as 64 hex digits or base64 "
                    + "(make one with: openssl rand -hex 32)")
        }
        key = SymmetricKey(data: bytes)
        let mac = HMAC<SHA256>.authenticationCode(for: Array("lethe master key id".utf8), using: key)
        id = mac.prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// Reads the key file (`path`); its permissions are the operator's business, its content is checked.
    public init(contentsOf path: String) throws(MasterKeyError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MasterKeyError("cannot read the master key file \(path): no such readable file")
        }
        try self.init(text: String(decoding: data, as: UTF8.self), source: "the file \(path)")
    }

    /// Seals `secret`, bound to `context` (the account, the site): a sealed value copied to
    /// another account does not open there.
    public func seal(_ secret: String, context: String) throws -> Data {
        let box = try AES.GCM.seal(Array(secret.utf8), using: key, authenticating: Array(context.utf8))
        guard let combined = box.combined else { throw MasterKeyError("AES-GCM gave no combined box") }
        return combined
    }

    /// Opens what `seal` made for the same `context`. `sealedBy` is the stored key id.
    public func open(_ sealed: Data, context: String, sealedBy: String?) throws(MasterKeyError) -> String {
        if let sealedBy, sealedBy != id {
            throw MasterKeyError(
                "the secret of \(context) was sealed under master key \(sealedBy), but the configured master key is \(id)"
            )
        }
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            let plain = try AES.GCM.open(box, using: key, authenticating: Array(context.utf8))
            return String(decoding: plain, as: UTF8.self)
        } catch {
            throw MasterKeyError("the secret of \(context) does not open with master key \(id) (wrong key or damaged)")
        }
    }
}

/// A master key that is missing, malformed or does not fit. The message never holds key material.
public struct MasterKeyError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
