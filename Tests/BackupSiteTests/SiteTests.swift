import BackupSites
import Foundation
import Retention
import SFTP
import TestSupport
import Testing

@Suite("Backup sites, sftp:// and file://, behave alike")
struct SiteTests {
    @Test(arguments: SiteFixture.Kind.allCases)
    func uploadIsCompleteIdempotentAndLeavesNoTemporaryFile(kind: SiteFixture.Kind) async throws {
        let fixture = try SiteFixture(kind)
        defer { fixture.cleanUp() }
        let (local, data) = try fixture.localFile("part-0001.zip", size: 2_000_003)
        let (first, second, size, missing) = try await blocking {
            let site = try fixture.open()
            defer { site.close() }
            let first = try site.upload(localFile: local, name: "part-0001.zip")
            let second = try site.upload(localFile: local, name: "part-0001.zip")
            return (first, second, try site.size(of: "part-0001.zip"), try site.size(of: "part-0002.zip"))
        }
        #expect(first == Int64(data.count))
        #expect(second == first)
        #expect(size == first)
        #expect(missing == nil)
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(fixture.siteDirectory)/part-0001.zip")) == data)
        #expect(try fixture.siteNames() == ["part-0001.zip"])
    }

    @Test(arguments: SiteFixture.Kind.allCases)
    func existingNameOfAnotherSizeIsRefusedAndKept(kind: SiteFixture.Kind) async throws {
        let fixture = try SiteFixture(kind)
        defer { fixture.cleanUp() }
        let first = try fixture.localFile("a", size: 5_000)
        let other = try fixture.localFile("b", size: 5_001)
        let error = try await thrownError {
            let site = try fixture.open()
            defer { site.close() }
            _ = try site.upload(localFile: first.path, name: "x.zip")
            _ = try site.upload(localFile: other.path, name: "x.zip")
        }
        let thrown = try #require(error)
        switch kind {
        case .sftp: #expect((thrown as? SFTPError)?.kind == .exists, "\(thrown)")
        case .file: #expect((thrown as? BackupSiteError)?.kind == .exists, "\(thrown)")
        }
        #expect((thrown as? any TransientError)?.isTransient == false)
        #expect("\(thrown)".contains("\(fixture.siteDirectory)/x.zip"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(fixture.siteDirectory)/x.zip")) == first.data)
        #expect(try fixture.siteNames() == ["x.zip"])
    }

    /// A killed upload leaves `.<name>.<hex>.part` behind: once it has been untouched for the
    /// age given, it goes; a fresh one (an upload still running), anything not named exactly
    /// as an upload names its temporary files, a directory, and the archives themselves stay.
    @Test(arguments: SiteFixture.Kind.allCases)
    func abandonedTemporaryFilesGoOnceOldEnoughAndNothingElseDoes(kind: SiteFixture.Kind) async throws {
        let fixture = try SiteFixture(kind)
        defer { fixture.cleanUp() }
        let file = try fixture.localFile("a", size: 10_000)
        let stale = (0..<20).map { _ in SFTPSession.temporaryName(for: "backup_1_job_20261205_0001.zip") }
        let fresh = SFTPSession.temporaryName(for: "backup_1_job_20261206_0001.zip")
        let others = [
            ".backup_1_job.zip.not-hex.part", ".backup_1_job.zip.ABC123.part", ".backup_1.zip.12345678901234567.part",
            ".notes.cafe.part", ".hidden.part", ".zip.abc.part", "notes.part", "kept.zip",
        ]
        let directory = ".backup_2_job.zip.abc.part"
        let twoHoursAgo = Date().addingTimeInterval(-7200)
        for name in Set(stale + [fresh] + others + [directory]) {
            let path = "\(fixture.siteDirectory)/\(name)"
            if name == directory {
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
            } else {
                try Data("x".utf8).write(to: URL(fileURLWithPath: path))
            }
            if name != fresh {
                try FileManager.default.setAttributes([.modificationDate: twoHoursAgo], ofItemAtPath: path)
            }
        }
        let (removed, again) = try await blocking {
            let site = try fixture.open()
            defer { site.close() }
            _ = try site.upload(localFile: file.path, name: "new.zip")
            let removed = try site.removeAbandonedUploads(olderThan: .seconds(3600))
            return (removed, try site.removeAbandonedUploads(olderThan: .seconds(3600)))
        }
        #expect(Set(removed) == Set(stale) && removed.count == Set(stale).count)
        #expect(again.isEmpty)
        #expect(try fixture.siteNames() == Array(Set([fresh, "new.zip", directory] + others)).sorted())
    }

    @Test(arguments: SiteFixture.Kind.allCases)
    func removeIsIdempotent(kind: SiteFixture.Kind) async throws {
        let fixture = try SiteFixture(kind)
        defer { fixture.cleanUp() }
        let file = try fixture.localFile("a", size: 1_000)
        let size = try await blocking {
            let site = try fixture.open()
            defer { site.close() }
            _ = try site.upload(localFile: file.path, name: "gone.zip")
            try site.remove("gone.zip")
            try site.remove("gone.zip")
            return try site.size(of: "gone.zip")
        }
        #expect(size == nil)
        #expect(try fixture.siteNames() == [])
    }

    @Test(arguments: SiteFixture.Kind.allCases)
    func namesMustBePlainFileNames(kind: SiteFixture.Kind) async throws {
        let fixture = try SiteFixture(kind)
        defer { fixture.cleanUp() }
        let file = try fixture.localFile("a", size: 10)
        for name in ["", "../escape.zip", "sub/dir.zip", ".hidden.part"] {
            let error = try await thrownError {
                let site = try fixture.open()
                defer { site.close() }
                _ = try site.upload(localFile: file.path, name: name)
            }
            let siteError = try #require(error as? BackupSiteError, "\(String(describing: error))")
            #expect(siteError.kind == .invalidName)
            #expect(siteError.message.contains("\"\(name)\""))
        }
        #expect(try fixture.siteNames() == [])
    }

    @Test(arguments: SiteFixture.Kind.allCases)
    func missingDirectoryIsReportedAtOpen(kind: SiteFixture.Kind) async throws {
        let fixture = try SiteFixture(kind)
        defer { fixture.cleanUp() }
        try FileManager.default.removeItem(atPath: fixture.siteDirectory)
        let error = try await thrownError { _ = try fixture.open() }
        let thrown = try #require(error)
        #expect("\(thrown)".contains(fixture.siteDirectory))
        #expect((thrown as? any TransientError)?.isTransient == false)
    }

    @Test func sftpSiteWithoutCredentialsIsAConfigurationError() async throws {
        let fixture = try SiteFixture(.sftp)
        defer { fixture.cleanUp() }
        let url = try fixture.url
        let error = try await thrownError {
            _ = try BackupSites.open(url, credentials: SiteCredentials(), timeout: .seconds(5))
        }
        let siteError = try #require(error as? BackupSiteError)
        #expect(siteError.kind == .configuration)
        #expect(siteError.message.contains(url.description))
    }

    @Test func fileSiteErrorsNameThePath() async throws {
        let fixture = try SiteFixture(.file)
        defer { fixture.cleanUp() }
        let error = try await thrownError {
            let site = try fixture.open()
            _ = try site.upload(localFile: "\(fixture.localDirectory)/does-not-exist", name: "a.zip")
        }
        let siteError = try #require(error as? BackupSiteError)
        #expect(siteError.kind == .io)
        #expect(siteError.function == "open")
        #expect(siteError.message.contains("\(fixture.localDirectory)/does-not-exist"))
    }

    @Test func brokenSessionIsReopenedOnRetry() async throws {
        let fixture = try SiteFixture(.sftp)
        defer { fixture.cleanUp() }
        let sshd = try await blocking { try PrivateSSHD.start() }
        defer { try? sshd.stop() }
        let file = try fixture.localFile("a", size: 300_000)
        let url = try BackupSiteURL(
            parsing: "sftp://\(fixture.server.user)@127.0.0.1:\(sshd.port)\(fixture.siteDirectory)")
        let credentials = SiteCredentials(identityFile: fixture.server.keyPath, knownHostsFile: sshd.knownHostsPath)
        let (size, retries) = try await blocking {
            let site = try BackupSites.open(url, credentials: credentials, timeout: .seconds(10))
            defer { site.close() }
            try sshd.restart()  // the site's session is now dead, though it does not know yet
            var retries: [String] = []
            let policy = RetryPolicy(base: .milliseconds(10), maximum: .seconds(30))
            let size = try policy.run(
                attempts: 3, sleep: { _ in }, onRetry: { error, _, _ in retries.append("\(error)") }
            ) {
                try site.upload(localFile: file.path, name: "a.zip")
            }
            return (size, retries)
        }
        #expect(size == 300_000)
        #expect(retries.count == 1, "\(retries)")
        #expect(retries.first?.contains("127.0.0.1:\(sshd.port)") == true, "\(retries)")
        #expect(try fixture.siteNames() == ["a.zip"])
    }
}
