import Foundation
import Postgres

/// The mutator's log and stop switch, shared between its thread and the run.
final class ChaosMutatorLog: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [LoggedChange] = []
    private var stopped = false
    private var finished = false
    private var failures = 0

    var changes: [LoggedChange] { lock.withLock { entries } }
    var isStopped: Bool { lock.withLock { stopped } }
    var isFinished: Bool { lock.withLock { finished } }
    var failed: Int { lock.withLock { failures } }
    func append(_ entry: LoggedChange) { lock.withLock { entries.append(entry) } }
    func fail() { lock.withLock { failures += 1 } }
    func stop() { lock.withLock { stopped = true } }
    func finish() { lock.withLock { finished = true } }
}

/// A second session that keeps placing and releasing holds, changing intervals, suspending
/// and reactivating accounts and switching retention off and on, each change in its own
/// transaction (some held open a while), logged with its commit time. It reconnects when
/// PostgreSQL restarts under it. Adapted from the deletion-safety suite's `Mutator`.
struct ChaosMutator: Sendable {
    var conninfo: String
    var seed: UInt64
    var accounts: [String]
    var types: [String]
    static let intervals = ["1 day", "30 days", "90 days", "6 mons", "1 year", "2 years"]

    func start() -> ChaosMutatorLog {
        let log = ChaosMutatorLog()
        let thread = Thread {
            defer { log.finish() }
            var random = ChaosRandom(seed: seed)
            var connection: Connection?
            while !log.isStopped {
                usleep(UInt32.random(in: 100_000...500_000, using: &random))
                let account = accounts.randomElement(using: &random)!
                let operation = Int.random(in: 0..<6, using: &random)
                do {
                    if connection == nil {
                        connection = try Connection.connect(conninfo, applicationName: "lethe-chaos-mutator")
                    }
                    let session = connection!
                    try session.execute("BEGIN")
                    let xid = try session.scalar("SELECT txid_current()", as: Int64.self)
                    let change = try apply(operation, account: account, random: &random, on: session)
                    if Bool.random(using: &random) { usleep(UInt32.random(in: 50_000...300_000, using: &random)) }
                    try session.execute("COMMIT")
                    // The commit time; if the session is cut right after COMMIT, this
                    // machine's clock (the server's too) stands in for it.
                    let at =
                        (try? session.scalar(
                            "SELECT (extract(epoch FROM pg_xact_commit_timestamp(($1::bigint % 4294967296)::text::xid))"
                                + " * 1000000)::bigint", [xid], as: Int64.self))
                        ?? Int64(Date().timeIntervalSince1970 * 1_000_000)
                    log.append(LoggedChange(at: at, account: account, change: change))
                } catch is Skip {
                    _ = try? connection?.execute("ROLLBACK")
                } catch {
                    // A restart of PostgreSQL cut the session: a change whose commit is not
                    // known may or may not have committed, so the run reads the settings'
                    // final state from the tables too (the checker tolerates nothing else).
                    log.fail()
                    connection?.close()
                    connection = nil
                }
            }
            connection?.close()
        }
        thread.start()
        return log
    }

    private struct Skip: Error {}

    private func apply(
        _ operation: Int, account: String, random: inout ChaosRandom, on connection: Connection
    ) throws
        -> PolicyChange
    {
        switch operation {
        case 0:
            let type: String? = Bool.random(using: &random) ? types.randomElement(using: &random) : nil
            let seconds: Int? = Bool.random(using: &random) ? Int.random(in: 2...20, using: &random) : nil
            let id = try connection.scalar(
                "SELECT lethe.place_hold($1, $2, 'chaos mutator', now() + $3 * interval '1 second')",
                [account, type, seconds], as: Int64.self)
            let until = try connection.scalar(
                "SELECT (extract(epoch FROM until) * 1000000)::bigint FROM lethe.holds WHERE id = $1", [id],
                as: Int64?.self)
            return .hold(id: id, type: type, until: until)
        case 1, 2:
            let held = try connection.query(
                "SELECT id FROM lethe.holds WHERE account_id = $1 AND released_at IS NULL AND reason = 'chaos mutator' ORDER BY id",
                [account])
            guard held.count > 0 else { throw Skip() }
            let id = try held[Int.random(in: 0..<held.count, using: &random)].decode(Int64.self, at: 0)
            try connection.execute("SELECT lethe.release_hold($1)", [id])
            return .release(id: id)
        case 3:
            let type = types.randomElement(using: &random)!
            let asked = Self.intervals.randomElement(using: &random)!
            let stored = try connection.scalar(
                "SELECT effective::text FROM lethe.set_policy($1, $2, $3::interval)", [account, type, asked],
                as: String.self)
            return .policy(type: type, retention: stored)
        case 4:
            let state = try connection.scalar(
                "SELECT state FROM lethe.accounts WHERE account_id = $1", [account], as: String.self)
            let next = state == "active" ? "suspended" : "active"
            try connection.execute("SELECT lethe.set_account_state($1, $2)", [account, next])
            return .state(next)
        default:
            let disabled = try connection.scalar(
                "SELECT retention_disabled FROM lethe.accounts WHERE account_id = $1", [account], as: Bool.self)
            try connection.execute(
                "SELECT lethe.operator_set_retention_disabled($1, $2, 'chaos mutator')", [account, !disabled])
            return .retentionDisabled(!disabled)
        }
    }
}

/// A seeded generator (splitmix64): the same seed, the same faults and changes.
struct ChaosRandom: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E49B
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
