import Foundation
import SFTP
import TestSupport
import Testing

@Suite("Host key checks happen before logging in")
struct HostKeyTests {
    @Test func unknownHostIsRefused() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        // The right key, but for another port: nothing is known about [127.0.0.1]:PORT.
        let lines = try fixture.knownHostLines(type: "ssh-ed25519").map {
            $0.replacingOccurrences(of: ":\(fixture.server.port) ", with: ":1 ")
        }
        let knownHosts = try fixture.knownHosts("other_hosts", lines)
        let error = try await sftpError { _ = try fixture.session(knownHosts: knownHosts) }
        #expect(error.kind == .hostKeyUnknown)
        #expect(!error.isTransient)
        #expect(error.message.contains("[127.0.0.1]:\(fixture.server.port)"))
        #expect(error.message.contains(knownHosts))
        #expect(error.message.contains("SHA256:"))
    }

    @Test func changedKeyIsRefused() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        let fresh = try fixture.generateKey("impostor_host_key")
        let publicKey = try String(contentsOfFile: fresh + ".pub", encoding: .utf8).split(separator: " ")
        let knownHosts = try fixture.knownHosts(
            "changed_hosts", ["[127.0.0.1]:\(fixture.server.port) \(publicKey[0]) \(publicKey[1])"])
        let error = try await sftpError { _ = try fixture.session(knownHosts: knownHosts) }
        #expect(error.kind == .hostKeyMismatch)
        #expect(!error.isTransient)
        #expect(error.message.contains("127.0.0.1:\(fixture.server.port)"))
    }

    /// known_hosts lines stored in the database (`site add --known-hosts`) are checked like a
    /// file: hashed entries, CRLF line ends, comments and blank lines are read; a changed host
    /// key among them is refused as a mismatch, before any credential is sent.
    @Test func storedLinesHashedWithCRLFWorkAndAChangedKeyIsRefused() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        let hashed = try fixture.knownHosts("hashed_text", try fixture.knownHostLines(type: "ssh-ed25519"))
        try fixture.run("/usr/bin/ssh-keygen", ["-q", "-H", "-f", hashed])
        let hashedLines = try String(contentsOfFile: hashed, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(!hashedLines.joined().contains("127.0.0.1"))
        @Sendable func session(_ text: String) throws(SFTPError) -> SFTPSession {
            try SFTPSession(
                host: fixture.server.host, port: fixture.server.port,
                credentials: SFTPCredentials(
                    user: fixture.server.user,
                    authentication: .privateKey(path: fixture.server.keyPath, passphrase: nil),
                    knownHosts: .text(text, origin: "site 3")),
                timeout: .seconds(10))
        }
        let text = "# written by ssh-keygen -H\r\n\r\n" + hashedLines.joined(separator: "\r\n") + "\r\n"
        let size = try await blocking { try session(text).stat(fixture.server.root) }
        #expect(size != nil)

        let fresh = try fixture.generateKey("impostor_text_key")
        let publicKey = try String(contentsOfFile: fresh + ".pub", encoding: .utf8).split(separator: " ")
        let changed = "[127.0.0.1]:\(fixture.server.port) \(publicKey[0]) \(publicKey[1])\r\n"
        let error = try await sftpError { _ = try session(changed) }
        #expect(error.kind == .hostKeyMismatch)
        #expect(error.message.contains("known_hosts lines stored for site 3"), "\(error.message)")
        #expect(!error.message.contains(String(publicKey[1])))
    }

    @Test(arguments: ["ssh-ed25519", "ecdsa-sha2-nistp256"])
    func knownHostsWithOneKeyTypeWorks(type: String) async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        let lines = try fixture.knownHostLines(type: type)
        try #require(lines.count == 1)
        let knownHosts = try fixture.knownHosts("only_\(type)", lines)
        let size = try await blocking { try fixture.session(knownHosts: knownHosts).stat(fixture.remoteDirectory) }
        #expect(size != nil)
    }

    @Test func hashedKnownHostsWork() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        let knownHosts = try fixture.knownHosts("hashed_hosts", try fixture.knownHostLines(type: "ssh-ed25519"))
        try fixture.run("/usr/bin/ssh-keygen", ["-q", "-H", "-f", knownHosts])
        #expect(try !String(contentsOfFile: knownHosts, encoding: .utf8).contains("127.0.0.1"))
        let size = try await blocking { try fixture.session(knownHosts: knownHosts).stat(fixture.remoteDirectory) }
        #expect(size != nil)
    }

    @Test func knownTypeTheServerLacksFailsTheHandshake() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        // The server has ed25519 and ECDSA host keys only: pinning RSA leaves nothing in common.
        let rsa = try fixture.generateKey("rsa_host_key", type: "rsa")
        let publicKey = try String(contentsOfFile: rsa + ".pub", encoding: .utf8).split(separator: " ")
        let knownHosts = try fixture.knownHosts(
            "rsa_hosts", ["[127.0.0.1]:\(fixture.server.port) \(publicKey[0]) \(publicKey[1])"])
        let error = try await sftpError { _ = try fixture.session(knownHosts: knownHosts) }
        #expect(error.kind == .handshake, "\(error)")
        #expect(!error.isTransient)
        #expect(error.message.contains(knownHosts))
    }

    @Test func missingKnownHostsFileIsNamed() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        let missing = "\(fixture.localDirectory)/no_such_known_hosts"
        let error = try await sftpError { _ = try fixture.session(knownHosts: missing) }
        #expect(error.kind == .hostKeyUnknown)
        #expect(error.message.contains(missing))
        #expect(error.message.contains("No such file"))
    }
}
