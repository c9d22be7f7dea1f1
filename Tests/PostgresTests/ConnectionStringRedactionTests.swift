import Postgres
import Testing

/// Every form libpq accepts a password in is masked wherever a connection string reaches
/// output; no database needed.
@Suite struct ConnectionStringRedactionTests {
    /// (connection string, what may be shown). The secret in each is "hunter2" or "a b'c".
    static let cases: [(String, String)] = [
        ("host=h password=hunter2 user=u", "host=h password=*** user=u"),
        // A URL after spaces or a newline (libpq then reads it as keywords and echoes it).
        (" postgresql://u:S3CRET@h/x", " postgresql://u:***@h/x"),
        ("\npostgresql://u:S3CRET@h/x", "\npostgresql://u:***@h/x"),
        ("level: \"postgres://u:S3CRET@h/x\"", "level: \"postgres://u:***@h/x\""),
        ("host=h password = hunter2 user=u", "host=h password = *** user=u"),
        ("host=h password= hunter2", "host=h password= ***"),
        ("host=h password =hunter2", "host=h password =***"),
        ("host=127.0.0.1 port=x password = hunter2", "host=127.0.0.1 port=x password = ***"),
        ("host=h password='a b\\'c' user=u", "host=h password=*** user=u"),
        ("host=h password = 'hunter2' user=u", "host=h password = *** user=u"),
        ("host=h password=hun\\ ter2 user=u", "host=h password=*** user=u"),
        ("host=h PASSWORD=hunter2", "host=h PASSWORD=***"),
        ("host=h Password = 'hunter2'", "host=h Password = ***"),
        ("host=h sslpassword=hunter2", "host=h sslpassword=***"),
        ("password=hunter2", "password=***"),
        ("\tpassword\t=\thunter2\t", "\tpassword\t=\t***\t"),
        ("host=h password hunter2", "host=h password ***"),
        ("host=h password='hunter2", "host=h password=***"),
        ("host=h password=", "host=h password=***"),
        ("host=h dbname='host=x password=hunter2'", "host=h dbname=***"),
        ("postgresql://u:hunter2@h:5/d", "postgresql://u:***@h:5/d"),
        ("postgres://u:hunter2@h/d", "postgres://u:***@h/d"),
        ("POSTGRESQL://u:hunter2@h/d", "POSTGRESQL://u:***@h/d"),
        ("postgresql://u:hun%40ter2@h/d", "postgresql://u:***@h/d"),
        ("postgresql://u:hun@ter2@h/d", "postgresql://u:***@h/d"),
        ("postgresql://u:hunter2@h1:5,h2:6/d?x=1", "postgresql://u:***@h1:5,h2:6/d?x=1"),
        ("postgresql://h/d?password=hunter2", "postgresql://h/d?password=***"),
        ("postgresql://h/d?x=1&password=hunter2&y=2", "postgresql://h/d?x=1&password=***&y=2"),
        ("postgresql://h/d?PASSWORD=hunter2", "postgresql://h/d?PASSWORD=***"),
        ("postgresql://h/d?pass%77ord=hunter2", "postgresql://h/d?pass%77ord=***"),
        ("postgresql://h/d?sslpassword=hunter2", "postgresql://h/d?sslpassword=***"),
        ("postgresql://u:hunter2@h/d?password=hunter2", "postgresql://u:***@h/d?password=***"),
        ("postgresql://u@h/d", "postgresql://u@h/d"),
        ("host=h user=u dbname=app", "host=h user=u dbname=app"),
        ("", ""),
    ]

    @Test(arguments: cases)
    func masks(_ conninfo: String, _ shown: String) {
        let redacted = ConnectionString.redacted(conninfo)
        #expect(redacted == shown)
        #expect(!redacted.contains("hunter2") && !redacted.contains("ter2") && !redacted.contains("b\\'c"))
    }

    @Test func secretsAreFoundForScrubbingMessages() {
        #expect(ConnectionString.secrets(in: "host=h password = 'a b\\'c'").contains("a b'c"))
        #expect(ConnectionString.secrets(in: "postgresql://u:hun%40ter2@h/d").contains("hun@ter2"))
        #expect(ConnectionString.secrets(in: "postgresql://u:hun%40ter2@h/d").contains("hun%40ter2"))
        #expect(ConnectionString.secrets(in: "postgresql://h/d?password=hunter2") == ["hunter2"])
        #expect(ConnectionString.secrets(in: "host=h user=u").isEmpty)
    }

    @Test func messagesAreScrubbedOfTheSecretsAndPGPASSWORD() {
        let message = "invalid percent-encoded token: \"hun%zzter2\"; password hunter2 from PGPASSWORD s3cr3t-env"
        let scrubbed = ConnectionString.scrub(
            message, conninfo: "postgresql://u:hun%zzter2@h/d?password=hunter2",
            environment: ["PGPASSWORD": "s3cr3t-env"])
        #expect(!scrubbed.contains("hunter2") && !scrubbed.contains("hun%zzter2") && !scrubbed.contains("s3cr3t"))
        #expect(scrubbed.contains("invalid percent-encoded token"))
    }

    @Test(arguments: [
        "host=127.0.0.1 port=x password = hunter2", "host=h port=99999 PASSWORD=hunter2",
        "postgresql://u:hun%zzter2@h/d", "postgresql://u:hunter2@h/d?password=hunter2&nosuchoption=1",
        "host=h password='hunter2' nosuchkeyword=1", "host=h password = hunter2 port",
    ])
    func validationErrorsNeverShowThePassword(_ conninfo: String) {
        let error = #expect(throws: PostgresError.self) { try ConnectionString.validate(conninfo) }
        #expect(error?.description.contains("hunter2") == false, "\(error?.description ?? "")")
        #expect(error?.description.contains("ter2") == false, "\(error?.description ?? "")")
    }
}
