import Postgres
import TestSupport
import Testing

/// Connections through PgBouncer in transaction-pooling mode (scripts/services.sh starts one).
@Suite struct PoolerTests {
    static let keepalives = [("options", "-c tcp_keepalives_idle=10")]

    @Test func refusedOptionsAreDroppedAndThePoolerIsSeen() throws {
        let pooled = try Connection.connect(try TestEnvironment.pgBouncerURL(), defaults: Self.keepalives)
        defer { pooled.close() }
        #expect(pooled.optionsRefused)
        #expect(try pooled.isThroughPooler())
        #expect(try pooled.query("SELECT 1")[0].decode(Int.self, at: 0) == 1)

        let direct = try Connection.connect(try TestEnvironment.databaseURL(), defaults: Self.keepalives)
        defer { direct.close() }
        #expect(!direct.optionsRefused)
        #expect(try !direct.isThroughPooler())
        #expect(try direct.query("SHOW tcp_keepalives_idle")[0].decode(String.self, at: 0) == "10")
    }

    /// `options` in the connection string itself is the caller's: its refusal is an error.
    @Test func optionsInTheURLAreNotDropped() throws {
        let url = try TestEnvironment.pgBouncerURL() + "?options=-c%20tcp_keepalives_idle%3D10"
        #expect {
            try Connection.connect(url).close()
        } throws: { error in
            "\(error)".contains("unsupported startup parameter: options")
        }
    }
}
