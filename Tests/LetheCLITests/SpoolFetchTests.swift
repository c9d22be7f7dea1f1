import Foundation
import Postgres
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The spool is a cache: a worker with another spool directory continues a job another
/// worker packed, fetching the files back from a site that holds them (SHA-256 verified).
@Suite(.serialized) struct SpoolFetchTests {
    /// Worker A (spool X) packs, uploads to the file:// site and dies (`kill -9`) while the
    /// sftp upload runs; worker B (spool Y) fetches the file back from the file:// site,
    /// uploads it to the sftp site and deletes the rows once approved.
    @Test func anotherWorkerWithAnotherSpoolFinishesAKilledWorkersJob() async throws {
        try await withMigratedDatabase { database in
            // About 350 kB at about 160 KiB/s: the sftp upload takes about 2 s.
            let fixture = try ArchiveFixture(database: database, scale: 1000)
            let sshd = try PrivateSSHD.start(sftpUploadRate: 160 * 1024)
            try fixture.addFileSite()
            try fixture.addSFTPSite(port: sshd.port, knownHosts: sshd.knownHostsPath)
            try fixture.enableArchiving()
            try fixture.snapshot()
            let job = try fixture.startJob()
            try fixture.preApprove(job)
            let sftpRoot = try TestSSHServer.fromEnvironment().root
            let log = fixture.directory.appendingPathComponent("worker-a.log")
            let process = try LetheProcess.launch(
                ["run", "--log-level", "debug", "--config", fixture.configPath], log: log)
            defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
            func runLog() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

            // The sftp upload is under way only once the file:// site's upload is recorded.
            func sftpUploadRunning() throws -> Bool {
                guard let name = try fixture.files(job: job).first?.name else { return false }
                return ((try? FileManager.default.contentsOfDirectory(atPath: sftpRoot)) ?? []).contains {
                    $0.hasPrefix(".\(name).") && $0.hasSuffix(".part") && (fileSize("\(sftpRoot)/\($0)") ?? 0) > 0
                }
            }
            let deadline = Date().addingTimeInterval(90)
            while try !sftpUploadRunning() {
                guard process.isRunning, Date() < deadline else {
                    Issue.record("no sftp upload of job \(job) within 90 s:\n\(runLog().suffix(3000))")
                    return
                }
                usleep(20_000)
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            fixture.keep(runLog())

            // The state worker B starts from: one site holds the file, the other does not.
            let file = try #require(try fixture.files(job: job).first)
            let size = try #require(file.size)
            #expect(try fixture.files(job: job).count == 1)
            #expect(fileSize("\(fixture.siteDirectory)/\(file.name)") == size)
            #expect(fileSize("\(sftpRoot)/\(file.name)") == nil)
            let held: Int = try fixture.connection.scalar(
                "SELECT count(*)::int FROM lethe.archive_uploads WHERE file_id = $1 AND status = 'uploaded'", [file.id])
            #expect(held == 1)
            #expect(try fixture.gone(account: 1).isEmpty)
            let spoolX = fixture.directory.appendingPathComponent("spool").path
            #expect(fileSize("\(spoolX)/\(job)/\(file.name)") == size)

            // Worker B, another spool directory.
            let spoolY = fixture.directory.appendingPathComponent("spool-y").path
            let configB = try writeConfig(
                try String(contentsOfFile: fixture.configPath, encoding: .utf8)
                    .replacingOccurrences(of: "spool_directory: \(spoolX)", with: "spool_directory: \(spoolY)"))
            defer { try? FileManager.default.removeItem(atPath: configB) }
            let finish = try LetheProcess.run(["run", "--until-idle", "--log-level", "debug", "--config", configB])
            fixture.keep(finish.output)
            #expect(finish.status == 0, "\(finish.output.suffix(3000))")
            #expect(finish.output.contains("fetched back"), "\(finish.output.suffix(3000))")

            let files = try fixture.files(job: job)
            #expect(files.map(\.status) == ["deleted"], "\(files)\n\(fixture.diagnostics())")
            for path in ["\(fixture.siteDirectory)/\(file.name)", "\(sftpRoot)/\(file.name)"] {
                #expect(fileSize(path) == size, "\(path)")
                #expect(try sha256(of: path) == file.sha256, "\(path)")
            }
            let gone = try fixture.gone(account: 1)
            let roots = try fixture.manifestIDs(job: job, type: "conversations", index: 0)
            #expect(!roots.isEmpty && Set(gone["app.conversations"] ?? []) == roots)
            let verify = try fixture.lethe(["archive", "verify", "\(sftpRoot)/\(file.name)"])
            #expect(verify.status == 0, "\(verify.output)")
            #expect(try fixture.secretsStayedSecret())
            try? FileManager.default.removeItem(atPath: "\(sftpRoot)/\(file.name)")
        }
    }

    /// A site's copy that does not match the recorded SHA-256 (same size, other bytes) is
    /// refused; the next site's copy is fetched and uploaded to the site that lacks it.
    @Test func aCopyWithAnotherDigestIsRefusedAndTheNextSiteGivesIt() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database)
            try fixture.addFileSite()
            try fixture.addSFTPSite()
            try fixture.enableArchiving()
            let job = try fixture.startJob()
            try fixture.runUntilIdle()
            let file = try #require(try fixture.files(job: job).first)
            #expect(file.status == "uploaded", "\(fixture.diagnostics())")
            let size = try #require(file.size)
            let sftpRoot = try TestSSHServer.fromEnvironment().root
            defer { try? FileManager.default.removeItem(atPath: "\(sftpRoot)/\(file.name)") }

            // Site 1's copy is damaged in place; a third site is added that lacks the file.
            let damaged = "\(fixture.siteDirectory)/\(file.name)"
            let handle = try #require(FileHandle(forUpdatingAtPath: damaged))
            try handle.seek(toOffset: UInt64(size / 2))
            try handle.write(contentsOf: Data(repeating: 0x5a, count: 16))
            try handle.close()
            let third = fixture.directory.appendingPathComponent("third").path
            try FileManager.default.createDirectory(atPath: third, withIntermediateDirectories: true)
            try fixture.expectSuccess(["account", "site", "add", "1", "file://\(third)"])

            let spoolX = fixture.directory.appendingPathComponent("spool").path
            let configB = try writeConfig(
                try String(contentsOfFile: fixture.configPath, encoding: .utf8)
                    .replacingOccurrences(of: "spool_directory: \(spoolX)", with: "spool_directory: \(spoolX)-y"))
            defer { try? FileManager.default.removeItem(atPath: configB) }
            try fixture.expectSuccess(["archive", "approve", "\(file.id)"])
            let finish = try LetheProcess.run(["run", "--until-idle", "--log-level", "debug", "--config", configB])
            fixture.keep(finish.output)
            #expect(finish.status == 0, "\(finish.output.suffix(3000))")
            #expect(finish.output.contains("refused the copy of \(file.name)"), "\(finish.output.suffix(3000))")
            #expect(try fixture.jobState(job) == "deleted", "\(fixture.diagnostics())")
            #expect(try sha256(of: "\(third)/\(file.name)") == file.sha256)
            #expect(try fixture.secretsStayedSecret())
        }
    }
    /// The spool is a cache, and a cache entry is checked before use: a spool copy with the
    /// recorded size but other bytes (a damaged disk, a stale file of an earlier pack left in a
    /// reused spool directory) is never uploaded. It is discarded and the file fetched back
    /// from a site whose copy matches; every site ends up with the packed bytes before any
    /// row is deleted.
    @Test func aDamagedSpoolCopyIsNeverUploaded() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database)
            try fixture.addFileSite()
            try fixture.enableArchiving()
            let job = try fixture.startJob()
            try fixture.runUntilIdle()
            let file = try #require(try fixture.files(job: job).first)
            #expect(file.status == "uploaded", "\(fixture.diagnostics())")
            let size = try #require(file.size)

            // The spool copy is damaged in place (same size); a second site that lacks the file is added.
            let spool = fixture.directory.appendingPathComponent("spool").path
            let damaged = "\(spool)/\(job)/\(file.name)"
            #expect(fileSize(damaged) == size)
            let handle = try #require(FileHandle(forUpdatingAtPath: damaged))
            try handle.seek(toOffset: UInt64(size / 2))
            try handle.write(contentsOf: Data(repeating: 0x5a, count: 16))
            try handle.close()
            let second = fixture.directory.appendingPathComponent("second").path
            try FileManager.default.createDirectory(atPath: second, withIntermediateDirectories: true)
            try fixture.expectSuccess(["account", "site", "add", "1", "file://\(second)"])

            try fixture.expectSuccess(["archive", "approve", "\(file.id)"])
            let finish = try LetheProcess.run([
                "run", "--until-idle", "--log-level", "debug", "--config", fixture.configPath,
            ])
            fixture.keep(finish.output)
            #expect(finish.status == 0, "\(finish.output.suffix(3000))")
            #expect(try sha256(of: "\(second)/\(file.name)") == file.sha256, "\(finish.output.suffix(3000))")
            #expect(try sha256(of: "\(fixture.siteDirectory)/\(file.name)") == file.sha256)
            #expect(finish.output.contains("fetched back"), "\(finish.output.suffix(3000))")
            #expect(try fixture.jobState(job) == "deleted", "\(fixture.diagnostics())")
            #expect(try fixture.secretsStayedSecret())
        }
    }
}
