import Foundation
import Logging
import Postgres
import Store
import Synchronization

/// The leader's backlog snapshot duty: every `coordinator.backlog_interval` it replaces
/// `lethe.retention_backlog_snapshot` with the live backlog (`BacklogSnapshot.refresh`).
///
/// A refresh counts every account's expired rows (seconds to minutes on thousands of
/// accounts), so it runs on a thread and session of its own, opened for it and closed
/// after: the leader's tick (heartbeat, rescue, pruning, scheduling) never waits for it. At
/// most one runs at a time; the next is due an interval after the last one started. A
/// failure is thrown from the next tick, so the coordinator logs it as a failed duty.
/// With the interval off it records that once in a while (`BacklogSnapshot.disable`), so
/// readers use the live view instead of reporting a missing snapshot.
public final class BacklogRefresher: SchedulerTick, Sendable {
    public let name = "backlog snapshot"
    private let conninfo: String
    private let snapshot: BacklogSnapshot?
    private let process: UUID?
    private let logger: Logger
    private let state = Mutex(State())

    struct State {
        var lastStart: ContinuousClock.Instant?
        var running = false
        var failure: (any Error)?
    }

    /// How often the "off" record is renewed, so a leader that took over from one with the
    /// snapshot on corrects it.
    static let disabledRecordInterval: Duration = .seconds(300)

    /// `snapshot` nil: refreshing is off. `conninfo` opens the refresh's own session.
    public init(conninfo: String, snapshot: BacklogSnapshot?, process: UUID?, logger: Logger) {
        self.conninfo = conninfo
        self.snapshot = snapshot
        self.process = process
        self.logger = logger
    }

    public func tick(on connection: Connection) throws -> Int {
        let now = ContinuousClock.now
        let interval = snapshot?.interval ?? Self.disabledRecordInterval
        let (due, failure): (Bool, (any Error)?) = state.withLock { state in
            let failure = state.failure
            state.failure = nil
            guard !state.running, state.lastStart.map({ now - $0 >= interval }) ?? true else { return (false, failure) }
            state.lastStart = now
            state.running = snapshot != nil
            return (true, failure)
        }
        if due {
            if let snapshot { start(snapshot) } else { try BacklogSnapshot.disable(by: process, on: connection) }
        }
        if let failure { throw failure }
        return 0
    }

    /// Runs one refresh on a new thread with its own connection.
    private func start(_ snapshot: BacklogSnapshot) {
        NamedThread.start("lethe-backlog") { [self] in
            let started = ContinuousClock.now
            do {
                let connection = try Connection.connect(conninfo, applicationName: "lethe-backlog")
                defer { connection.close() }
                let pairs = try snapshot.refresh(by: process, on: connection)
                logger.debug(
                    "refreshed the backlog snapshot",
                    metadata: ["pairs": "\(pairs)", "duration": "\(ContinuousClock.now - started)"])
                state.withLock { $0.running = false }
            } catch {
                state.withLock {
                    $0.running = false
                    $0.failure = error
                }
            }
        }
    }
}
