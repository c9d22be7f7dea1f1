import Foundation
import LetheBench
import Postgres
import TestSupport

/// The mutator's log, shared between its thread and the test.
final class MutatorLog: @unchecked Sendable {
    private let lock = NSLock()
    private var _entries: [LoggedChange] = []
    private var _stopped = false
    private var _finished = false

    var entries: [LoggedChange] { lock.withLock { _entries } }
    var stopped: Bool { lock.withLock { _stopped } }
    var finished: Bool { lock.withLock { _finished } }
    func append(_ entry: LoggedChange) { lock.withLock { _entries.append(entry) } }
    func stop() { lock.withLock { _stopped = true } }
    func finish() { lock.withLock { _finished = true } }
}

/// A second session that keeps placing and releasing holds, changing intervals, suspending
/// and reactivating accounts and switching retention off and on while Lethe runs, each change
/// in its own transaction (half of them held open a while), logged with its commit time
/// (`pg_xact_commit_timestamp`).
struct Mutator: Sendable {
    var url: String
    var seed: UInt64
    var accounts: [String]
    var types: [String]
    var maxChanges: Int

    /// Starts the session on a thread of its own (libpq blocks); stop it with `log.stop()`.
    func start() -> MutatorLog {
        let log = MutatorLog()
        let thread = Thread {
            defer { log.finish() }
            guard let connection = try? Connection.connect(url) else { return }
            defer { connection.close() }
            var random = SeededGenerator(seed: seed)
            var done = 0
            while !log.stopped && done < maxChanges {
                usleep(UInt32.random(in: 40_000...200_000, using: &random))
                let account = accounts.randomElement(using: &random)!
                let operation = Int.random(in: 0..<5, using: &random)
                do {
                    try connection.execute("BEGIN")
                    let xid = try connection.scalar("SELECT txid_current()", as: Int64.self)
                    let change = try apply(operation, account: account, random: &random, on: connection)
                    // Holding the account's lock a while, as a slow application would, lets
                    // batches queue behind it (issue 14 defect 7).
                    if Bool.random(using: &random) { usleep(UInt32.random(in: 50_000...400_000, using: &random)) }
                    try connection.execute("COMMIT")
                    let at = try connection.scalar(
                        "SELECT (extract(epoch FROM pg_xact_commit_timestamp(($1::bigint % 4294967296)::text::xid))"
                            + " * 1000000)::bigint", [xid], as: Int64.self)
                    log.append(LoggedChange(at: at, account: account, change: change))
                    done += 1
                } catch {
                    _ = try? connection.execute("ROLLBACK")
                }
            }
        }
        thread.start()
        return log
    }

    private struct Skip: Error {}

    private func apply(
        _ operation: Int, account: String, random: inout SeededGenerator, on connection: Connection
    )
        throws -> PolicyChange
    {
        switch operation {
        case 0:
            let type: String? = Bool.random(using: &random) ? types.randomElement(using: &random) : nil
            let seconds: Int? = Bool.random(using: &random) ? Int.random(in: 1...3, using: &random) : nil
            let id = try connection.scalar(
                "SELECT lethe.place_hold($1, $2, 'mutator', now() + $3 * interval '1 second')",
                [account, type, seconds],
                as: Int64.self)
            let until = try connection.scalar(
                "SELECT (extract(epoch FROM until) * 1000000)::bigint FROM lethe.holds WHERE id = $1", [id],
                as: Int64?.self)
            return .hold(id: id, type: type, until: until)
        case 1:
            let held = try connection.query(
                "SELECT id FROM lethe.holds WHERE account_id = $1 AND released_at IS NULL ORDER BY id", [account])
            guard held.count > 0 else { throw Skip() }
            let id = try held[Int.random(in: 0..<held.count, using: &random)].decode(Int64.self, at: 0)
            try connection.execute("SELECT lethe.release_hold($1)", [id])
            return .release(id: id)
        case 2:
            let type = types.randomElement(using: &random)!
            let asked = TenantSetup.intervals.randomElement(using: &random)!
            let stored = try connection.scalar(
                "SELECT effective::text FROM lethe.set_policy($1, $2, $3::interval)", [account, type, asked],
                as: String.self)
            return .policy(type: type, retention: stored)
        case 3:
            let state = try connection.scalar(
                "SELECT state FROM lethe.accounts WHERE account_id = $1", [account], as: String.self)
            let next = state == "active" ? "suspended" : "active"
            try connection.execute("SELECT lethe.set_account_state($1, $2)", [account, next])
            return .state(next)
        default:
            let disabled = try connection.scalar(
                "SELECT retention_disabled FROM lethe.accounts WHERE account_id = $1", [account], as: Bool.self)
            try connection.execute(
                "SELECT lethe.operator_set_retention_disabled($1, $2, 'mutator')", [account, !disabled])
            return .retentionDisabled(!disabled)
        }
    }
}
