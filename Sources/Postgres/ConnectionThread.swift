import Dispatch
import Foundation
import Synchronization

/// A dedicated OS thread that owns one `Connection` and runs the blocking database work
/// that async code submits, so libpq never blocks Swift's cooperative thread pool.
///
/// The connection opens on first use. When a call leaves it broken (server restart,
/// terminated backend, network loss) that call fails, and the next call opens a new one:
/// a broken handle is never reused. Work runs in submission order, one closure at a time.
public final class ConnectionThread: Sendable {
    /// Owns the connection on the thread; never leaves it.
    final class Slot {
        let conninfo: String
        let applicationName: String
        let defaults: [(String, String)]
        var connection: Connection?
        init(conninfo: String, applicationName: String, defaults: [(String, String)]) {
            self.conninfo = conninfo
            self.applicationName = applicationName
            self.defaults = defaults
        }
        func live() throws -> Connection {
            if let connection, !connection.isBroken { return connection }
            connection?.close()
            connection = nil
            let fresh = try Connection.connect(conninfo, applicationName: applicationName, defaults: defaults)
            connection = fresh
            return fresh
        }
    }

    private typealias Job = @Sendable (Slot) -> Void
    private struct State {
        var jobs: [Job] = []
        var accepting = true
    }

    private let state = Mutex(State())
    private let wakeup = DispatchSemaphore(value: 0)

    /// Starts the thread. `conninfo` and `defaults` are as for `Connection.connect`; `name`
    /// shows in debuggers and `application_name` defaults to `lethe`.
    public init(
        conninfo: String, name: String = "lethe-db", applicationName: String = "lethe",
        defaults: [(String, String)] = []
    ) {
        let slot = UncheckedSlot(Slot(conninfo: conninfo, applicationName: applicationName, defaults: defaults))
        NamedThread.start(name) { [self] in self.loop(slot.value) }
    }

    private func loop(_ slot: Slot) {
        while true {
            wakeup.wait()
            let job = state.withLock { $0.jobs.isEmpty ? nil : $0.jobs.removeFirst() }
            guard let job else { break }  // the shutdown signal, with nothing left queued
            job(slot)
        }
        slot.connection?.close()
        slot.connection = nil
    }

    private func enqueue(_ job: @escaping Job) -> Bool {
        let accepted = state.withLock { state in
            guard state.accepting else { return false }
            state.jobs.append(job)
            return true
        }
        if accepted { wakeup.signal() }
        return accepted
    }

    /// Runs `body` on the thread with its live connection and returns its result. If the
    /// calling task is cancelled while `body` runs, the statement in progress is cancelled on
    /// the server (`PQcancel`), so a long statement cannot hold up a shutdown; cancelled
    /// before `body` starts, it throws `CancellationError` without running it.
    @discardableResult
    public func run<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        let inFlight = InFlight()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                let accepted = enqueue { slot in
                    continuation.resume(
                        with: Result {
                            let connection = try slot.live()
                            // Cancelled while queued: do not start.
                            guard inFlight.begin(connection.makeCanceller()) else { throw CancellationError() }
                            defer { inFlight.end() }
                            return try body(connection)
                        })
                }
                if !accepted {
                    continuation.resume(
                        throwing: PostgresError(.connectionClosed, message: "the connection thread has shut down"))
                }
            }
        } onCancel: {
            inFlight.cancel()
        }
    }

    /// Finishes the work already queued, closes the connection and ends the thread.
    /// Later `run` calls throw `.connectionClosed`.
    public func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let accepted = enqueue { slot in
                slot.connection?.close()
                slot.connection = nil
                continuation.resume()
            }
            state.withLock { $0.accepting = false }
            wakeup.signal()  // the empty-queue signal that ends the loop
            if !accepted { continuation.resume() }
        }
    }
}

/// Hands the slot to its thread once, at start; only that thread touches it afterwards.
private struct UncheckedSlot: @unchecked Sendable {
    let value: ConnectionThread.Slot
    init(_ value: ConnectionThread.Slot) { self.value = value }
}

/// The canceller of one `run` while its body executes; a cancel after the body ends does
/// nothing, so it never reaches another caller's statement.
private final class InFlight: Sendable {
    private let state = Mutex<(canceller: StatementCanceller?, cancelled: Bool)>((nil, false))

    /// Records the canceller; false when the caller was cancelled already.
    func begin(_ value: StatementCanceller?) -> Bool {
        state.withLock { state in
            if state.cancelled { return false }
            state.canceller = value
            return true
        }
    }
    func end() { state.withLock { $0.canceller = nil } }
    /// Sends the cancel while holding the lock, so the body cannot finish and hand the
    /// connection to the next job before the request is out. A request that reaches the
    /// server before the statement does (the body is between statements, or its query is
    /// still on the wire) is ignored there, so it is sent again until the body ends.
    func cancel() {
        let inFlight = state.withLock { state in
            state.cancelled = true
            state.canceller?.cancel()
            return state.canceller != nil
        }
        if inFlight { resendLater() }
    }
    private func resendLater() {
        DispatchQueue.global().asyncAfter(deadline: .now() + InFlight.resendInterval) { [self] in
            let still = state.withLock { state in
                state.canceller?.cancel()
                return state.canceller != nil
            }
            if still { resendLater() }
        }
    }
    private static let resendInterval = DispatchTimeInterval.milliseconds(250)
}
