import Foundation
import SFTP
import TestSupport
import Testing

@Suite("SFTP uploads against the test sshd")
struct UploadTests {
    @Test func uploadLandsWithTheRightBytesAndLeavesNoTemporaryFile() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        let (local, data) = try fixture.localFile("archive.zip", size: 3 * 1024 * 1024 + 17)
        let remote = "\(fixture.remoteDirectory)/archive.zip"

        let (size, again, stat) = try await blocking {
            let session = try fixture.session()
            defer { session.close() }
            let size = try session.upload(from: local, to: remote)
            let again = try session.upload(from: local, to: remote)  // a retry after a lost answer
            return (size, again, try session.stat(remote))
        }
        #expect(size == Int64(data.count))
        #expect(again == size)
        #expect(stat == size)
        #expect(try Data(contentsOf: URL(fileURLWithPath: remote)) == data)
        #expect(try fixture.remoteNames() == ["archive.zip"])
    }

    /// 0 bytes; less than one write request; more than the 8 MiB buffer of the default
    /// window; and small windows, so that the buffer slides and compacts many times.
    @Test(arguments: [
        (0, UploadWindow.defaultWindow), (1, UploadWindow.defaultWindow), (29_999, UploadWindow.defaultWindow),
        (2 * (2 * UploadWindow.defaultWindow) + 12_345, UploadWindow.defaultWindow), (1_000_003, 65_536),
        (250_001, 30_000), (70_001, 1000),
    ])
    func uploadIsByteIdenticalWhateverTheSizeAndWindow(size: Int, window: Int) async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        let (local, data) = try fixture.localFile("archive.zip", size: size)
        let remote = "\(fixture.remoteDirectory)/archive.zip"
        let (uploaded, stat) = try await blocking {
            let session = try fixture.session()
            defer { session.close() }
            let uploaded = try session.upload(from: local, to: remote, window: window)
            return (uploaded, try session.stat(remote))
        }
        #expect(uploaded == Int64(size))
        #expect(stat == Int64(size))
        #expect(try Data(contentsOf: URL(fileURLWithPath: remote)) == data)
        #expect(try fixture.remoteNames() == ["archive.zip"])
    }

    @Test func existingNameWithAnotherSizeIsRefusedAndLeftUntouched() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        let first = try fixture.localFile("first", size: 100_000)
        let second = try fixture.localFile("second", size: 100_001)
        let remote = "\(fixture.remoteDirectory)/archive.zip"
        _ = try await blocking {
            let session = try fixture.session()
            return try session.upload(from: first.path, to: remote)
        }

        let error = try await sftpError {
            let session = try fixture.session()
            _ = try session.upload(from: second.path, to: remote)
        }
        #expect(error.kind == .exists)
        #expect(!error.isTransient)
        #expect(error.message.contains(remote))
        #expect(error.message.contains("127.0.0.1:\(fixture.server.port)"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: remote)) == first.data)
        #expect(try fixture.remoteNames() == ["archive.zip"])
    }

    @Test func statOfAMissingFileIsNil() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        let size = try await blocking {
            let session = try fixture.session()
            return try session.stat("\(fixture.remoteDirectory)/missing.zip")
        }
        #expect(size == nil)
    }

    @Test func downloadRemoveAndMakeDirectory() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        let (local, data) = try fixture.localFile("a.bin", size: 2_500_000)
        let copy = "\(fixture.localDirectory)/copy.bin"
        let nested = "\(fixture.remoteDirectory)/nested"
        let removeMissing = try await blocking { () -> SFTPError? in
            let session = try fixture.session()
            try session.makeDirectory(nested)
            try session.makeDirectory(nested)  // exists: fine
            _ = try session.upload(from: local, to: "\(nested)/a.bin")
            #expect(try session.download("\(nested)/a.bin", to: copy) == Int64(data.count))
            // A file larger than the caller expects is refused before more than that is read.
            #expect(throws: SFTPError.self) {
                try session.download("\(nested)/a.bin", to: copy, atMost: Int64(data.count) - 1)
            }
            #expect(try session.download("\(nested)/a.bin", to: copy, atMost: Int64(data.count)) == Int64(data.count))
            try session.remove("\(nested)/a.bin")
            #expect(try session.stat("\(nested)/a.bin") == nil)
            do throws(SFTPError) {
                try session.remove("\(nested)/a.bin")
                return nil
            } catch {
                return error
            }
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: copy)) == data)
        let error = try #require(removeMissing)
        #expect(error.kind == .sftp)
        #expect(error.code == 2)
        #expect(error.message.contains("\(nested)/a.bin"))
    }

    @Test func missingLocalFileNamesItAndIsNotTransient() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        let error = try await sftpError {
            let session = try fixture.session()
            _ = try session.upload(from: "/nonexistent/archive.zip", to: "\(fixture.remoteDirectory)/x.zip")
        }
        #expect(error.kind == .io)
        #expect(!error.isTransient)
        #expect(error.message.contains("/nonexistent/archive.zip"))
    }

    @Test func closedSessionThrows() async throws {
        let fixture = try SFTPFixture()
        defer { fixture.cleanUp() }
        let error = try await sftpError {
            let session = try fixture.session()
            session.close()
            session.close()
            _ = try session.stat(fixture.remoteDirectory)
        }
        #expect(error.message.contains("closed"))
    }
}
