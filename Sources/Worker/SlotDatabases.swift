import Postgres
import Synchronization

/// One database thread per worker slot, opened when a handler first asks for it (a no-op
/// task never does), so N slots cost at most N connections.
final class SlotDatabases: Sendable {
    private let conninfo: String
    private let threads: Mutex<[Int: ConnectionThread]>

    init(conninfo: String) {
        self.conninfo = conninfo
        self.threads = Mutex([:])
    }

    func thread(forSlot slot: Int) -> ConnectionThread {
        threads.withLock { threads in
            if let thread = threads[slot] { return thread }
            let thread = ConnectionThread(conninfo: conninfo, name: "lethe-slot-\(slot)")
            threads[slot] = thread
            return thread
        }
    }

    func shutdown() async {
        let all = threads.withLock { threads in
            defer { threads.removeAll() }
            return Array(threads.values)
        }
        for thread in all { await thread.shutdown() }
    }
}
