import Foundation
import SFTP
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Connection failures: which are transient, and what messages say")
struct ConnectionTests {
    @Test func wrongUserKeyFailsAuthentication() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        let stranger = try fixture.generateKey("stranger")
        let error = try await sftpError {
            _ = try SFTPSession(
                host: fixture.server.host, port: fixture.server.port,
                credentials: fixture.credentials(knownHosts: fixture.server.knownHostsPath, key: stranger))
        }
        #expect(error.kind == .authentication)
        #expect(!error.isTransient)
        #expect(error.message.contains("\(fixture.server.user)@127.0.0.1:\(fixture.server.port)"))
    }

    @Test func secretsNeverEnterMessages() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        let password = "pw-Zq83-never-logged"
        let passwordError = try await sftpError {
            _ = try SFTPSession(
                host: fixture.server.host, port: fixture.server.port,
                credentials: SFTPCredentials(
                    user: fixture.server.user, authentication: .password(password),
                    knownHostsPath: fixture.server.knownHostsPath))
        }
        #expect(passwordError.kind == .authentication)
        #expect(!"\(passwordError) \(passwordError.message)".contains(password))

        let passphrase = "pp-Kx71-never-logged"
        let locked = try fixture.generateKey("locked", passphrase: passphrase)
        let passphraseError = try await sftpError {
            _ = try SFTPSession(
                host: fixture.server.host, port: fixture.server.port,
                credentials: SFTPCredentials(
                    user: fixture.server.user,
                    authentication: .privateKey(path: locked, passphrase: "wrong-\(passphrase)"),
                    knownHostsPath: fixture.server.knownHostsPath))
        }
        #expect(passphraseError.kind == .authentication)
        #expect(passphraseError.message.contains(locked))
        #expect(!"\(passphraseError)".contains(passphrase))
    }

    @Test func passphraseProtectedKeyWorks() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        // The server only knows the shared client key: give that key a passphrase in a copy.
        let copy = "\(fixture.localDirectory)/client_copy"
        try FileManager.default.copyItem(atPath: fixture.server.keyPath, toPath: copy)
        try fixture.run("/usr/bin/ssh-keygen", ["-q", "-p", "-N", "s3cret", "-f", copy])
        let size = try await blocking {
            let session = try SFTPSession(
                host: fixture.server.host, port: fixture.server.port,
                credentials: SFTPCredentials(
                    user: fixture.server.user, authentication: .privateKey(path: copy, passphrase: "s3cret"),
                    knownHostsPath: fixture.server.knownHostsPath))
            return try session.stat(fixture.server.root)
        }
        #expect(size != nil)
    }

    /// A key and known_hosts lines given as text (as stored in the database) log in like the
    /// files; a host key missing from the lines is refused, a wrong passphrase fails the login.
    @Test func keyAndKnownHostsFromMemory() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        let copy = "\(fixture.localDirectory)/client_copy"
        try FileManager.default.copyItem(atPath: fixture.server.keyPath, toPath: copy)
        try fixture.run("/usr/bin/ssh-keygen", ["-q", "-p", "-N", "s3cret", "-f", copy])
        let key = try String(contentsOfFile: copy, encoding: .utf8)
        let lines = "# comment\n\n" + (try String(contentsOfFile: fixture.server.knownHostsPath, encoding: .utf8))
        @Sendable func credentials(_ passphrase: String, _ knownHosts: String) -> SFTPCredentials {
            SFTPCredentials(
                user: fixture.server.user, authentication: .privateKeyContents(key, passphrase: passphrase),
                knownHosts: .text(knownHosts, origin: "site 7"))
        }
        let size = try await blocking {
            try SFTPSession(
                host: fixture.server.host, port: fixture.server.port, credentials: credentials("s3cret", lines)
            )
            .stat(fixture.server.root)
        }
        #expect(size != nil)
        let wrong = try await sftpError {
            _ = try SFTPSession(
                host: fixture.server.host, port: fixture.server.port, credentials: credentials("wrong", lines))
        }
        #expect(wrong.kind == .authentication)
        #expect(!"\(wrong) \(wrong.message)".contains("s3cret"))
        let unknown = try await sftpError {
            _ = try SFTPSession(
                host: fixture.server.host, port: fixture.server.port, credentials: credentials("s3cret", "# none\n"))
        }
        #expect(unknown.kind == .hostKeyUnknown)
        #expect(unknown.message.contains("known_hosts lines stored for site 7"), "\(unknown.message)")
    }

    @Test func refusedConnectionIsTransient() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        let closedPort = try PrivateSSHD.freePort()
        let error = try await sftpError { _ = try fixture.session(port: closedPort) }
        #expect(error.kind == .connect)
        #expect(error.isTransient)
        #expect(error.code == ECONNREFUSED)
        #expect(error.message.contains("127.0.0.1:\(closedPort)"))
    }

    @Test func silentServerTimesOut() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        // A socket that listens (the kernel completes the TCP handshake) but never speaks SSH.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                try #require(bind(listener, $0, length) == 0 && listen(listener, 4) == 0)
                try #require(getsockname(listener, $0, &length) == 0)
            }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let (error, elapsed) = try await blocking { () -> ((any Error)?, Duration) in
            let started = ContinuousClock.now
            do {
                _ = try SFTPSession(
                    host: "127.0.0.1", port: port, credentials: fixture.credentials, timeout: .milliseconds(500))
                return (nil, ContinuousClock.now - started)
            } catch {
                return (error, ContinuousClock.now - started)
            }
        }
        let timeout = try #require(error as? SFTPError)
        #expect(timeout.kind == .timeout)
        #expect(timeout.isTransient)
        #expect(timeout.message.contains("127.0.0.1:\(port)"))
        #expect(elapsed >= .milliseconds(400) && elapsed < .seconds(3), "\(elapsed)")
    }

    @Test func unresolvableHostIsNamed() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        let error = try await sftpError {
            _ = try SFTPSession(host: "no-such-host.invalid", port: 22, credentials: fixture.credentials)
        }
        #expect(error.kind == .resolve)
        #expect(error.message.contains("no-such-host.invalid:22"))
    }

    @Test func uploadBrokenByAStoppedServerIsTransientAndSucceedsAfterRestart() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        let sshd = try await blocking { try PrivateSSHD.start() }
        defer { try? sshd.stop() }
        let large = try await blocking { try fixture.largeFile("large.bin", mebibytes: 384) }
        let remote = "\(fixture.remoteDirectory)/large.bin"
        try await blocking { _ = try fixture.session(port: sshd.port, knownHosts: sshd.knownHostsPath) }

        // Stop the server once a good part of the file has arrived in the temporary name.
        let watcher = Thread {
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                let parts = (try? fixture.remoteNames().filter { $0.hasSuffix(".part") }) ?? []
                let arrived = parts.compactMap {
                    try? FileManager.default.attributesOfItem(atPath: "\(fixture.remoteDirectory)/\($0)")[.size] as? Int
                }
                if arrived.contains(where: { $0 > 32 << 20 }) { break }
                usleep(2_000)
            }
            try? sshd.stop()
        }
        watcher.start()
        let error = try await sftpError {
            let session = try fixture.session(port: sshd.port, knownHosts: sshd.knownHostsPath)
            _ = try session.upload(from: large, to: remote)
        }
        #expect(error.isTransient, "\(error)")
        #expect([.io, .timeout, .sftp].contains(error.kind), "\(error)")
        #expect(error.message.contains("127.0.0.1:\(sshd.port)"))
        #expect(!FileManager.default.fileExists(atPath: remote))

        try sshd.restart()
        let size = try await blocking {
            let session = try fixture.session(port: sshd.port, knownHosts: sshd.knownHostsPath)
            return try session.upload(from: large, to: remote)
        }
        #expect(size == 384 << 20)
        #expect((try FileManager.default.attributesOfItem(atPath: remote)[.size] as? Int) == 384 << 20)
    }
}
