import Foundation
import Postgres
import Synchronization
import TestSupport
import Testing

@Suite("LISTEN/NOTIFY, COPY and the connection thread")
struct NotificationCopyAndThreadTests {
    @Test func notifyArrivesOnAnotherConnection() throws {
        let url = try TestEnvironment.databaseURL()
        let listener = try Connection.connect(url)
        let sender = try Connection.connect(url)
        let channel = "lethe test \(UUID().uuidString)"  // needs quoting: spaces and dashes
        try listener.listen(channel)
        try sender.notify(channel, payload: "hello ünïcode")
        let notification = try listener.waitForNotification(timeout: .seconds(5))
        #expect(notification?.channel == channel)
        #expect(notification?.payload == "hello ünïcode")
        #expect(notification?.senderPID == sender.backendPID)
    }

    @Test func notificationsInsideATransactionArriveAtCommit() throws {
        let url = try TestEnvironment.databaseURL()
        let listener = try Connection.connect(url)
        let sender = try Connection.connect(url)
        let channel = "lethe_tx_\(UUID().uuidString.prefix(8))"
        try listener.listen(channel)
        try sender.withTransaction { sender in
            try sender.notify(channel, payload: "1")
            #expect(try listener.waitForNotification(timeout: .milliseconds(200)) == nil)
        }
        #expect(try listener.waitForNotification(timeout: .seconds(5))?.payload == "1")
    }

    @Test func waitTimesOutWithNil() throws {
        let listener = try Connection.connect(try TestEnvironment.databaseURL())
        try listener.listen("lethe_nobody_sends_here")
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try listener.waitForNotification(timeout: .milliseconds(300)) == nil)
        #expect(start.duration(to: clock.now) >= .milliseconds(300))
        let usage = cpuTime()
        _ = try listener.waitForNotification(timeout: .milliseconds(500))
        // Sleeping in poll(2), not spinning: far less CPU than wall time.
        #expect(cpuTime() - usage < 0.25)
    }

    @Test func copyOfAMillionRowsStreamsInBoundedMemory() throws {
        let connection = try Connection.connect(try TestEnvironment.databaseURL())
        let before = peakResidentBytes()
        var rows = 0
        var bytes = 0
        var lastLine = ""
        let copied = try connection.copyOut(
            "COPY (SELECT g, repeat('x', 200) FROM generate_series(1, 1000000) g) TO STDOUT"
        ) { chunk in
            rows += 1
            bytes += chunk.count
            if rows == 1_000_000 { lastLine = String(decoding: chunk, as: UTF8.self) }
        }
        #expect(copied == 1_000_000)
        #expect(rows == 1_000_000)
        #expect(bytes > 200_000_000)
        #expect(lastLine == "1000000\t" + String(repeating: "x", count: 200) + "\n")
        // ~205 MB went through; holding it would raise the peak by that much.
        let growth = peakResidentBytes() - before
        #expect(growth < 64 << 20, "peak RSS grew by \(growth >> 20) MiB while copying")
        #expect(try connection.query("SELECT 1")[0].decode(Int.self, at: 0) == 1)
    }

    @Test func copyStoppedByTheConsumerLeavesAUsableConnection() throws {
        struct Enough: Error {}
        let connection = try Connection.connect(try TestEnvironment.databaseURL())
        var seen = 0
        #expect(throws: Enough.self) {
            try connection.copyOut("COPY (SELECT g FROM generate_series(1, 5000000) g) TO STDOUT") { _ in
                seen += 1
                if seen == 10 { throw Enough() }
            }
        }
        #expect(try connection.query("SELECT 2")[0].decode(Int.self, at: 0) == 2)
    }

    @Test func copyInLoadsRows() throws {
        let connection = try Connection.connect(try TestEnvironment.databaseURL())
        try connection.execute("CREATE TEMP TABLE loaded (n int, label text)")
        let copied = try connection.copyIn("COPY loaded FROM STDIN") { send in
            for n in 1...1000 {
                try Array("\(n)\trow \(n)\n".utf8).withUnsafeBytes { try send($0) }
            }
        }
        #expect(copied == 1000)
        #expect(try connection.query("SELECT sum(n) FROM loaded")[0].decode(Int.self, at: 0) == 500_500)
    }

    @Test func threadRunsWorkOffTheCooperativePool() async throws {
        let thread = ConnectionThread(conninfo: try TestEnvironment.databaseURL(), name: "lethe-test-db")
        // The kernel's name for the thread each job ran on, and its id: one dedicated thread.
        @Sendable func whereAmI() -> (String, UInt) {
            let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
            return (comm.trimmingCharacters(in: .whitespacesAndNewlines), UInt(pthread_self()))
        }
        let first = try await thread.run { _ in whereAmI() }
        let second = try await thread.run { _ in whereAmI() }
        #expect(first.0 == "lethe-test-db")
        #expect(first.1 == second.1)
        #expect(first.1 != UInt(pthread_self()))
        await thread.shutdown()
        await #expect(throws: PostgresError.self) { try await thread.run { _ in 1 } }
    }

    // Both cancel tests give the statement far longer than a test needs: another suite's
    // blocking call can stall this process's cooperative pool for minutes on a 2-core machine,
    // and a statement that ended on its own before the cancel would prove nothing.
    @Test func aCancelBetweenStatementsReachesTheNextOne() async throws {
        let thread = ConnectionThread(conninfo: try TestEnvironment.databaseURL())
        let started = Mutex(false)
        let cancelSent = Mutex(false)
        let task = Task {
            try await thread.run { connection in
                started.withLock { $0 = true }
                // Not yet a statement on the server: the cancel sent now is ignored there.
                let deadline = Date().addingTimeInterval(600)
                while !cancelSent.withLock({ $0 }), Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
                Thread.sleep(forTimeInterval: 0.3)
                try connection.execute("SELECT pg_sleep(120)")
            }
        }
        while !started.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
        task.cancel()  // runs the cancellation handler, which sends the first request, before it returns
        cancelSent.withLock { $0 = true }
        let error = try #require(await task.result.failureError as? PostgresError)
        #expect(error.sqlState == .queryCanceled)
        #expect(try await thread.run { try $0.query("SELECT 4")[0].decode(Int.self, at: 0) } == 4)
        await thread.shutdown()
    }

    @Test func cancellingTheCallerCancelsTheStatement() async throws {
        let thread = ConnectionThread(conninfo: try TestEnvironment.databaseURL())
        let clock = ContinuousClock()
        // The closure names its backend before it sends the statement, so the observer looks
        // at that one session rather than matching query text across the whole cluster.
        let backend = Mutex<Int32?>(nil)
        let ended = Mutex<String?>(nil)
        let task = Task {
            do {
                try await thread.run { connection in
                    backend.withLock { $0 = connection.backendPID }
                    try connection.execute("SELECT pg_sleep(600)")
                }
                ended.withLock { $0 = "without an error" }
            } catch {
                ended.withLock { $0 = "with \(error)" }
                throw error
            }
        }
        // Cancel once the statement is running on the server.
        let observer = try Connection.connect(try TestEnvironment.databaseURL())
        defer { observer.close() }
        func running(_ pid: Int32?) throws -> Bool {
            guard let pid else { return false }
            return try observer.query(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int AND state = 'active' AND query = 'SELECT pg_sleep(600)'",
                [Int(pid)]
            )[0].decode(Int.self, at: 0) > 0
        }
        var seen = try running(backend.withLock { $0 })
        let deadline = clock.now + .seconds(300)
        var polls = 0  // a pool stalled past the deadline still gets its share of looks
        while !seen, clock.now < deadline || polls < 200 {
            polls += 1
            // A call that ended before its statement ran (a refused connection, say) says why.
            if let how = ended.withLock({ $0 }) {
                Issue.record("the call ended \(how) before its statement was seen running")
                return
            }
            try await Task.sleep(for: .milliseconds(50))
            seen = try running(backend.withLock { $0 })
        }
        try #require(
            seen,
            "the statement never showed as active in pg_stat_activity (backend \(String(describing: backend.withLock { $0 })))"
        )
        let cancelledAt = clock.now
        task.cancel()
        let result = await task.result
        let error = try #require(result.failureError as? PostgresError)
        // A pg_sleep that ran to its end returns no error: this one was interrupted.
        #expect(error.sqlState == .queryCanceled, "after \(cancelledAt.duration(to: clock.now))")
        // Cancelled while queued behind other work, a call does not run at all.
        let blocker = Task { try await thread.run { try $0.execute("SELECT pg_sleep(1)") } }
        try await Task.sleep(for: .milliseconds(100))
        let queued = Task { try await thread.run { _ in 1 } }
        queued.cancel()
        #expect(await queued.result.failureError is CancellationError)
        _ = await blocker.result
        // The connection is fine afterwards.
        #expect(try await thread.run { try $0.query("SELECT 3")[0].decode(Int.self, at: 0) } == 3)
        await thread.shutdown()
    }

    @Test func brokenConnectionIsReplacedNotReused() async throws {
        let url = try TestEnvironment.databaseURL()
        let thread = ConnectionThread(conninfo: url)
        let firstPID = try await thread.run { $0.backendPID }
        let admin = try Connection.connect(url)
        #expect(try admin.query("SELECT pg_terminate_backend($1::int)", [Int(firstPID)])[0].decode(Bool.self, at: 0))
        // The next call on the dead session fails and says the connection was lost.
        let error = await #expect(throws: PostgresError.self) {
            try await thread.run { try $0.execute("SELECT 1") }
        }
        #expect(error?.isConnectionLost == true)
        // The one after gets a new session.
        let secondPID = try await thread.run { try $0.query("SELECT pg_backend_pid()")[0].decode(Int32.self, at: 0) }
        #expect(secondPID != firstPID)
        await thread.shutdown()
    }

    @Test func closedConnectionRefusesCalls() throws {
        let connection = try Connection.connect(try TestEnvironment.databaseURL())
        connection.close()
        let error = #expect(throws: PostgresError.self) { try connection.query("SELECT 1") }
        #expect(error?.code == .connectionClosed)
    }
}

/// The process's peak resident set size (VmHWM), in bytes.
func peakResidentBytes() -> Int {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
        return kb * 1024
    }
    return 0
}

/// CPU seconds the calling thread has used.
func cpuTime() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1_000_000_000
}

extension Result {
    var failureError: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
