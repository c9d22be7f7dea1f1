import Foundation
import Postgres
import TestSupport
import Testing

/// `--identity` and `--known-hosts` are read once and stored sealed: a site keeps working
/// after the files are gone, and the database holds no key in plain text.
@Suite(.serialized) struct SealedSiteKeyTests {
    @Test func aSiteWorksAfterItsKeyFilesAreDeleted() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database)
            let server = try TestSSHServer.fromEnvironment()
            let identity = fixture.directory.appendingPathComponent("id_copy").path
            let knownHosts = fixture.directory.appendingPathComponent("known_hosts_copy").path
            try FileManager.default.copyItem(atPath: server.keyPath, toPath: identity)
            try FileManager.default.copyItem(atPath: server.knownHostsPath, toPath: knownHosts)
            let key = try String(contentsOfFile: identity, encoding: .utf8)
            try fixture.expectSuccess([
                "account", "site", "add", "1", "sftp://\(server.user)@\(server.host):\(server.port)\(server.root)",
                "--identity", identity, "--known-hosts", knownHosts,
            ])
            try FileManager.default.removeItem(atPath: identity)
            try FileManager.default.removeItem(atPath: knownHosts)
            let listed = try fixture.expectSuccess(["account", "site", "list", "1"]).stdout
            #expect(listed.contains("sealed (read from \(identity))"), "\(listed)")
            #expect(!listed.contains("PRIVATE KEY"))
            let stored: String = try fixture.connection.scalar(
                "SELECT encode(sealed_identity, 'escape') || encode(sealed_known_hosts, 'escape') FROM lethe.backup_sites"
            )
            #expect(!stored.contains("PRIVATE KEY") && !stored.contains("ssh-ed25519"))

            try fixture.enableArchiving()
            let job = try fixture.startJob()
            try fixture.runUntilIdle()
            let file = try #require(try fixture.files(job: job).first)
            defer { try? FileManager.default.removeItem(atPath: "\(server.root)/\(file.name)") }
            #expect(file.status == "uploaded", "\(fixture.diagnostics())")
            #expect(fileSize("\(server.root)/\(file.name)") == file.size)
            #expect(!(try fixture.everythingLogged()).contains(key))
        }
    }

    @Test func unreadableOrWrongKeyFilesExitTwo() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database)
            let server = try TestSSHServer.fromEnvironment()
            let url = "sftp://\(server.user)@\(server.host):\(server.port)\(server.root)"
            let missing = try fixture.lethe([
                "account", "site", "add", "1", url, "--identity", "/nonexistent/id", "--known-hosts",
                server.knownHostsPath,
            ])
            #expect(missing.status == 2 && missing.stderr.contains("cannot read --identity /nonexistent/id"))
            let notAKey = try fixture.lethe([
                "account", "site", "add", "1", url, "--identity", server.knownHostsPath, "--known-hosts",
                server.knownHostsPath,
            ])
            #expect(
                notAKey.status == 2 && notAKey.stderr.contains("is not an SSH private key file"), "\(notAKey.output)")
            // An endless file is refused after the first MiB, not read into memory; a directory is unreadable.
            let endless = try fixture.lethe([
                "account", "site", "add", "1", url, "--identity", "/dev/zero", "--known-hosts", server.knownHostsPath,
            ])
            #expect(
                endless.status == 2 && endless.stderr.contains("--identity /dev/zero is not an SSH private key file"),
                "\(endless.output)")
            let directory = try fixture.lethe([
                "account", "site", "add", "1", url, "--identity", server.keyPath, "--known-hosts",
                fixture.directory.path,
            ])
            #expect(
                directory.status == 2 && directory.stderr.contains("cannot read --known-hosts"), "\(directory.output)")
            // Nothing the refused files held reaches the output.
            let key = try String(contentsOfFile: server.keyPath, encoding: .utf8)
            #expect(!"\(missing.output)\(notAKey.output)\(endless.output)\(directory.output)".contains(key))
        }
    }
}
