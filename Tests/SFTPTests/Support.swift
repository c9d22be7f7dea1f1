import Foundation
import SFTP
import TestSupport
import Testing

/// Runs blocking `body` on a thread of its own, so libssh2 never blocks Swift's cooperative pool.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// The `SFTPError` `body` throws, on a thread of its own; fails when it throws none or another error.
func sftpError(
    _ body: @escaping @Sendable () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation
) async throws -> SFTPError {
    let error = try await blocking { () -> (any Error)? in
        do {
            try body()
            return nil
        } catch {
            return error
        }
    }
    let thrown = try #require(error, "expected an SFTPError", sourceLocation: sourceLocation)
    return try #require(thrown as? SFTPError, "expected an SFTPError, got \(thrown)", sourceLocation: sourceLocation)
}

/// `count` bytes from /dev/urandom.
func randomBytes(_ count: Int) throws -> Data {
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom"))
    defer { try? handle.close() }
    return try handle.read(upToCount: count) ?? Data()
}

/// The shared test sshd, a scratch remote directory for one test and local scratch files.
struct SFTPFixture: Sendable {
    let server: TestSSHServer
    /// A fresh directory under LETHE_TEST_SSH_ROOT (the same path locally and over SFTP).
    let remoteDirectory: String
    /// A fresh local directory for files to upload.
    let localDirectory: String

    init(_ name: String = #function) throws {
        server = try TestSSHServer.fromEnvironment()
        let tag = "\(name.prefix { $0.isLetter || $0.isNumber })-\(UUID().uuidString.prefix(8))"
        remoteDirectory = "\(server.root)/sftp-\(tag)"
        localDirectory = NSTemporaryDirectory() + "lethe-sftp-\(tag)"
        try FileManager.default.createDirectory(atPath: localDirectory, withIntermediateDirectories: true)
    }

    var credentials: SFTPCredentials { credentials(knownHosts: server.knownHostsPath) }

    func credentials(knownHosts: String, key: String? = nil) -> SFTPCredentials {
        SFTPCredentials(
            user: server.user, authentication: .privateKey(path: key ?? server.keyPath, passphrase: nil),
            knownHostsPath: knownHosts)
    }

    /// A session to the shared sshd with the remote directory created (by the sftp user, who must own it).
    func session(port: Int? = nil, knownHosts: String? = nil) throws(SFTPError) -> SFTPSession {
        let session = try SFTPSession(
            host: server.host, port: port ?? server.port,
            credentials: credentials(knownHosts: knownHosts ?? server.knownHostsPath), timeout: .seconds(10))
        try session.makeDirectory(remoteDirectory)
        return session
    }

    /// Writes `size` pseudo-random bytes to a new local file and returns its path and bytes.
    func localFile(_ name: String, size: Int) throws -> (path: String, data: Data) {
        let data = try randomBytes(size)
        let path = "\(localDirectory)/\(name)"
        try data.write(to: URL(fileURLWithPath: path))
        return (path, data)
    }

    /// A large file made of one random MiB repeated (cheap to write, incompressible enough).
    func largeFile(_ name: String, mebibytes: Int) throws -> String {
        let block = try localFile("block", size: 1 << 20).data
        let path = "\(localDirectory)/\(name)"
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        for _ in 0..<mebibytes { handle.write(block) }
        try handle.close()
        return path
    }

    /// Names in the remote directory, read locally.
    func remoteNames() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: remoteDirectory).sorted()
    }

    /// A known_hosts file with `lines`.
    func knownHosts(_ name: String, _ lines: [String]) throws -> String {
        let path = "\(localDirectory)/\(name)"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The lines of the shared known_hosts whose key type starts with `prefix`.
    func knownHostLines(type prefix: String) throws -> [String] {
        try String(contentsOfFile: server.knownHostsPath, encoding: .utf8).split(separator: "\n")
            .filter { $0.split(separator: " ").dropFirst().first?.hasPrefix(prefix) == true }.map(String.init)
    }

    /// Generates a fresh key pair with ssh-keygen; returns the private key path.
    func generateKey(_ name: String, type: String = "ed25519", passphrase: String = "") throws -> String {
        let path = "\(localDirectory)/\(name)"
        try run("/usr/bin/ssh-keygen", ["-q", "-t", type, "-N", passphrase, "-C", "lethe-test", "-f", path])
        return path
    }

    func run(_ executable: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestSetupError("\(executable) \(arguments) exited \(process.terminationStatus)")
        }
    }

    func cleanUp() {
        try? FileManager.default.removeItem(atPath: remoteDirectory)
        try? FileManager.default.removeItem(atPath: localDirectory)
    }
}
