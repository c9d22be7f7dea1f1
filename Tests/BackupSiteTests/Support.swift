import BackupSites
import Foundation
import TestSupport

/// Runs blocking `body` on a thread of its own, so that site calls never block Swift's cooperative pool.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// The error `body` throws (nil when none), run on a thread of its own.
func thrownError(_ body: @escaping @Sendable () throws -> Void) async throws -> (any Error)? {
    try await blocking { () -> (any Error)? in
        do {
            try body()
            return nil
        } catch {
            return error
        }
    }
}

/// One site of each scheme, each in a fresh directory, plus local scratch files.
struct SiteFixture: Sendable {
    enum Kind: String, Sendable, CaseIterable { case sftp, file }

    let kind: Kind
    let server: TestSSHServer
    /// The site's directory (for sftp, under LETHE_TEST_SSH_ROOT, the same path locally).
    let siteDirectory: String
    let localDirectory: String

    init(_ kind: Kind, _ name: String = #function) throws {
        self.kind = kind
        server = try TestSSHServer.fromEnvironment()
        let tag = "\(name.prefix { $0.isLetter || $0.isNumber })-\(kind)-\(UUID().uuidString.prefix(8))"
        localDirectory = NSTemporaryDirectory() + "lethe-site-\(tag)"
        try FileManager.default.createDirectory(atPath: localDirectory, withIntermediateDirectories: true)
        switch kind {
        case .sftp:
            siteDirectory = "\(server.root)/site-\(tag)"
            // The sftp user must own it: hand it over (the tests run as root, or as that user).
            try FileManager.default.createDirectory(atPath: siteDirectory, withIntermediateDirectories: false)
            if getuid() == 0, let owner = getpwnam(server.user) {
                chown(siteDirectory, owner.pointee.pw_uid, owner.pointee.pw_gid)
            }
        case .file:
            siteDirectory = "\(localDirectory)/site"
            try FileManager.default.createDirectory(atPath: siteDirectory, withIntermediateDirectories: false)
        }
    }

    var url: BackupSiteURL {
        get throws {
            switch kind {
            case .sftp:
                try BackupSiteURL(parsing: "sftp://\(server.user)@\(server.host):\(server.port)\(siteDirectory)")
            case .file: try BackupSiteURL(parsing: "file://\(siteDirectory)")
            }
        }
    }

    var credentials: SiteCredentials {
        SiteCredentials(identityFile: server.keyPath, knownHostsFile: server.knownHostsPath)
    }

    func open() throws -> any BackupSite {
        try BackupSites.open(url, credentials: credentials, timeout: .seconds(10))
    }

    func localFile(_ name: String, size: Int) throws -> (path: String, data: Data) {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom"))
        defer { try? handle.close() }
        let data = try handle.read(upToCount: size) ?? Data()
        let path = "\(localDirectory)/\(name)"
        try data.write(to: URL(fileURLWithPath: path))
        return (path, data)
    }

    func siteNames() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: siteDirectory).sorted()
    }

    func cleanUp() {
        try? FileManager.default.removeItem(atPath: siteDirectory)
        try? FileManager.default.removeItem(atPath: localDirectory)
    }
}
