import BackupSites
import Testing

@Suite("Backup site URLs")
struct URLParsingTests {
    struct Accepted: Sendable, CustomTestStringConvertible {
        var text: String
        var scheme: BackupSiteURL.Scheme
        var user: String?
        var host: String?
        var port: Int
        var path: String
        var description: String
        var testDescription: String { text }
    }

    static let accepted: [Accepted] = [
        .init(
            text: "sftp://backup@archive.example.com/srv/lethe", scheme: .sftp, user: "backup",
            host: "archive.example.com", port: 22, path: "/srv/lethe",
            description: "sftp://backup@archive.example.com/srv/lethe"),
        .init(
            text: "sftp://backup@10.0.0.5:2222/srv/lethe/", scheme: .sftp, user: "backup", host: "10.0.0.5", port: 2222,
            path: "/srv/lethe", description: "sftp://backup@10.0.0.5:2222/srv/lethe"),
        .init(
            text: "sftp://backup@archive:22/", scheme: .sftp, user: "backup", host: "archive", port: 22, path: "/",
            description: "sftp://backup@archive/"),
        .init(
            text: "SFTP://u@[::1]:2200/x", scheme: .sftp, user: "u", host: "::1", port: 2200, path: "/x",
            description: "sftp://u@[::1]:2200/x"),
        .init(
            text: "sftp://lethe-sftp@127.0.0.1:52222/tmp/lsvc/sftp-root", scheme: .sftp, user: "lethe-sftp",
            host: "127.0.0.1", port: 52222, path: "/tmp/lsvc/sftp-root",
            description: "sftp://lethe-sftp@127.0.0.1:52222/tmp/lsvc/sftp-root"),
        .init(
            text: "file:///mnt/backup/lethe", scheme: .file, user: nil, host: nil, port: 0, path: "/mnt/backup/lethe",
            description: "file:///mnt/backup/lethe"),
        .init(
            text: "file:///mnt/backup//", scheme: .file, user: nil, host: nil, port: 0, path: "/mnt/backup",
            description: "file:///mnt/backup"),
    ]

    @Test(arguments: accepted)
    func accepts(_ example: Accepted) throws {
        let url = try BackupSiteURL(parsing: example.text)
        #expect(url.scheme == example.scheme)
        #expect(url.user == example.user)
        #expect(url.host == example.host)
        #expect(url.port == example.port)
        #expect(url.path == example.path)
        #expect(url.description == example.description)
        #expect(try BackupSiteURL(parsing: url.description) == url)
    }

    static let expected = "expected sftp://USER@HOST[:PORT]/PATH or file:///PATH"

    static let rejected: [(String, String)] = [
        ("", "malformed backup site \"\": \(expected)"),
        ("sftp:/x", "malformed backup site \"sftp:/x\": \(expected)"),
        ("/srv/backup", "malformed backup site \"/srv/backup\": \(expected)"),
        ("backup.example.com:/srv", "malformed backup site \"backup.example.com:/srv\": \(expected)"),
        ("s3://bucket/lethe", "unsupported backup site scheme \"s3\" in \"s3://bucket/lethe\": \(expected)"),
        ("scp:host/x", "malformed backup site \"scp:host/x\": \(expected)"),
        (
            "sftp://archive.example.com/srv",
            "backup site \"sftp://archive.example.com/srv\" names no user: expected sftp://USER@HOST[:PORT]/PATH"
        ),
        (
            "sftp://backup:hunter2@archive/srv",
            "backup site \"sftp://backup:***@archive/srv\" contains a password: "
                + "remove it from the URL and use a password file instead"
        ),
        (
            "sftp://@archive/srv",
            "backup site \"sftp://@archive/srv\" has an invalid user \"\": expected sftp://USER@HOST[:PORT]/PATH"
        ),
        (
            "sftp://backup@/srv",
            "backup site \"sftp://backup@/srv\" names no valid host: expected sftp://USER@HOST[:PORT]/PATH"
        ),
        (
            "sftp://backup@archive:0/srv",
            "backup site \"sftp://backup@archive:0/srv\" has port \"0\": expected a number from 1 to 65535"
        ),
        (
            "sftp://backup@archive:65536/srv",
            "backup site \"sftp://backup@archive:65536/srv\" has port \"65536\": expected a number from 1 to 65535"
        ),
        (
            "sftp://backup@archive:ssh/srv",
            "backup site \"sftp://backup@archive:ssh/srv\" has port \"ssh\": expected a number from 1 to 65535"
        ),
        (
            "sftp://backup@archive",
            "backup site \"sftp://backup@archive\" has no path: expected sftp://USER@HOST[:PORT]/PATH with an absolute PATH"
        ),
        (
            "sftp://backup@archive/srv?x=1",
            "backup site \"sftp://backup@archive/srv?x=1\" contains \"?\": \(expected), without query or fragment"
        ),
        (
            "file://backup/srv",
            "backup site \"file://backup/srv\" names host \"backup\": "
                + "expected file:///PATH (three slashes and an absolute PATH)"
        ),
        ("file:/srv/backup", "malformed backup site \"file:/srv/backup\": \(expected)"),
    ]

    @Test(arguments: rejected)
    func rejects(_ text: String, message: String) {
        do {
            let url = try BackupSiteURL(parsing: text)
            Issue.record("accepted \(url)")
        } catch {
            #expect(error.description == message)
        }
    }

    @Test(arguments: [
        ("sftp://u:p%40ss-w0rd@h:2222/x", "p%40ss-w0rd", "sftp://u:***@h:2222/x"),
        // A `/` in the password, and user info in a file URL (a review found both printed).
        ("sftp://u:pa/ss1@host/dir", "pa/ss1", "sftp://u:***@host/dir"),
        ("file://u:S3cretfile@/tmp/x", "S3cretfile", "file://u:***@/tmp/x"),
    ])
    func passwordNeverAppears(url: String, secret: String, shown: String) {
        do {
            _ = try BackupSiteURL(parsing: url)
            Issue.record("a URL with a password was accepted")
        } catch {
            #expect(!error.description.contains(secret), "\(error.description)")
            #expect(error.description.contains(shown), "\(error.description)")
        }
    }
}
