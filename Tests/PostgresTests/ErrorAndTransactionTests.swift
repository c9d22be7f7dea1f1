import Foundation
import Postgres
import TestSupport
import Testing

@Suite("Errors and transactions")
struct ErrorAndTransactionTests {
    let connection: Connection

    init() throws {
        connection = try Connection.connect(try TestEnvironment.databaseURL())
    }

    @Test func uniqueViolationCarriesSQLStateAndConstraint() throws {
        try connection.execute("CREATE TEMP TABLE uniq (email text CONSTRAINT uniq_email UNIQUE)")
        try connection.execute("INSERT INTO uniq VALUES ($1)", ["secret-value@example.com"])
        let error = #expect(throws: PostgresError.self) {
            try connection.execute("INSERT INTO uniq VALUES ($1)", ["secret-value@example.com"])
        }
        #expect(error?.sqlState == .uniqueViolation)
        #expect(error?.constraint == "uniq_email")
        // The detail quotes the row; it stays out of the loggable description.
        #expect(error?.detail?.contains("secret-value") == true)
        #expect(error?.description.contains("secret-value") == false)
        #expect(error?.description.contains("23505") == true)
        // The connection is still usable after a statement error.
        #expect(try connection.query("SELECT 1")[0].decode(Int.self, at: 0) == 1)
    }

    @Test func syntaxErrorHasItsState() throws {
        let error = #expect(throws: PostgresError.self) { try connection.execute("SELEC 1") }
        #expect(error?.sqlState == .syntaxError)
        #expect(error?.isConnectionLost == false)
    }

    @Test func thrownErrorRollsBack() throws {
        struct Boom: Error {}
        try connection.execute("CREATE TEMP TABLE tx (n int)")
        #expect(throws: Boom.self) {
            try connection.withTransaction { connection in
                try connection.execute("INSERT INTO tx VALUES (1), (2)")
                throw Boom()
            }
        }
        #expect(try connection.query("SELECT count(*) FROM tx")[0].decode(Int.self, at: 0) == 0)
        #expect(!connection.isInTransaction)
    }

    @Test func committedTransactionKeepsRows() throws {
        try connection.execute("CREATE TEMP TABLE tx2 (n int)")
        let inserted = try connection.withTransaction(.serializable) { connection in
            try connection.execute("INSERT INTO tx2 VALUES (1), (2)")
        }
        #expect(inserted == 2)
        #expect(try connection.query("SELECT count(*) FROM tx2")[0].decode(Int.self, at: 0) == 2)
    }

    @Test func swallowedStatementErrorRefusesTheCommit() throws {
        try connection.execute("CREATE TEMP TABLE tx3 (n int PRIMARY KEY)")
        #expect(throws: PostgresError.self) {
            try connection.withTransaction { connection in
                try connection.execute("INSERT INTO tx3 VALUES (1)")
                _ = try? connection.execute("INSERT INTO tx3 VALUES (1)")  // fails; error swallowed
            }
        }
        #expect(try connection.query("SELECT count(*) FROM tx3")[0].decode(Int.self, at: 0) == 0)
    }

    @Test func savepointRollsBackOnlyItsPart() throws {
        struct Boom: Error {}
        try connection.execute("CREATE TEMP TABLE tx4 (n int)")
        try connection.withTransaction { connection in
            try connection.execute("INSERT INTO tx4 VALUES (1)")
            _ = try? connection.withSavepoint { connection in
                try connection.execute("INSERT INTO tx4 VALUES (2)")
                throw Boom()
            }
        }
        #expect(try connection.query("SELECT array_agg(n) FROM tx4")[0].decode([Int64].self, at: 0) == [1])
    }

    @Test func advisoryLocksExcludeOtherSessions() throws {
        let other = try Connection.connect(try TestEnvironment.databaseURL())
        let key = Int64.random(in: 1...Int64.max)
        #expect(try connection.tryAdvisoryLock(key))
        #expect(try !other.tryAdvisoryLock(key))
        #expect(try connection.advisoryUnlock(key))
        #expect(try other.tryAdvisoryLock(key))
        // A session that ends releases its locks (the server notices shortly after).
        other.close()
        try connection.execute("SET lock_timeout = '10s'")
        try connection.advisoryLock(key)
        #expect(try connection.advisoryUnlock(key))
    }

    @Test func unreachableServerGivesAClearErrorWithoutThePassword() throws {
        let error = #expect(throws: PostgresError.self) {
            try Connection.connect("postgresql://lethe:hunter2-secret@127.0.0.1:1/db?connect_timeout=2")
        }
        #expect(error?.code == .connectionFailed)
        #expect(error?.description.contains("hunter2") == false)
        #expect(error?.description.contains("127.0.0.1") == true)
    }

    @Test(
        "malformed connection strings name the value, never the password",
        arguments: [
            "postgresql://u:pw-secret@host:notaport/db", "postgresql://u:pw-secret@host/db?nosuchoption=1",
            "host=x password=pw-secret port=99999", "host='unterminated password=pw-secret",
        ])
    func malformedConnectionStrings(_ conninfo: String) throws {
        let error = #expect(throws: PostgresError.self) { try ConnectionString.validate(conninfo) }
        #expect(error?.code == .invalidConnectionString)
        #expect(error?.description.contains("pw-secret") == false)
    }

    @Test func redaction() {
        #expect(ConnectionString.redacted("postgresql://u:p%40ss@h:5/d?x=1") == "postgresql://u:***@h:5/d?x=1")
        #expect(ConnectionString.redacted("host=h password=abc user=u") == "host=h password=*** user=u")
        #expect(ConnectionString.redacted("host=h password='a b\\' c' user=u") == "host=h password=*** user=u")
        #expect(ConnectionString.redacted("postgresql://h/d?password=abc&x=1") == "postgresql://h/d?password=***&x=1")
        #expect(ConnectionString.redacted("postgresql://u@h/d") == "postgresql://u@h/d")
    }
}

@Suite struct ConnectionStringTests {
    @Test func pointingAtAnotherDatabase() {
        #expect(
            ConnectionString.withDatabase("postgresql://u@h:5/app?sslmode=disable", "x")
                == "postgresql://u@h:5/x?sslmode=disable")
        #expect(ConnectionString.withDatabase("postgresql://u@h", "x") == "postgresql://u@h/x")
        #expect(ConnectionString.withDatabase("host=h dbname=app", "x") == "host=h dbname=app dbname='x'")
        #expect(ConnectionString.withDatabase("", "it's") == "dbname='it\\'s'")
    }
}

/// Lethe's connection defaults apply, and the connection string still wins over them.
@Suite struct ConnectionDefaultsTests {
    func show(_ setting: String, _ connection: Connection) throws -> String {
        try connection.query("SELECT current_setting($1)", [setting])[0].decode(String.self, at: 0)
    }

    @Test func defaultsApplyAndTheConnectionStringWins() throws {
        let url = try TestEnvironment.databaseURL()
        let separator = url.contains("?") ? "&" : "?"
        #expect(try show("application_name", Connection.connect(url)) == "lethe")
        #expect(try show("application_name", Connection.connect(url + separator + "application_name=mine")) == "mine")
        let keepalive = [("options", "-c tcp_keepalives_idle=10")]
        #expect(try show("tcp_keepalives_idle", Connection.connect(url, defaults: keepalive)) == "10")
        let own = url + separator + "options=-c%20tcp_keepalives_idle%3D42"
        #expect(try show("tcp_keepalives_idle", Connection.connect(own, defaults: keepalive)) == "42")
    }
}
