import Foundation
import Postgres

/// What one benchmark run cost, to explain where a scaling curve flattens: CPU seconds of
/// PostgreSQL's processes and of the Lethe processes the bench started, lock waits sampled
/// from `pg_stat_activity`, and WAL written. CPU comes from `/proc`, so it is known only
/// when the server runs on this machine (nil otherwise).
struct BenchCost {
    var wallSeconds: Double
    /// CPU seconds of the postmaster and its children (backends, WAL writer, checkpointer…).
    var postgresCPU: Double?
    /// CPU seconds of the child processes this bench started and waited for.
    var letheCPU: Double
    var walBytes: Double
    /// Samples taken, and the mean number of the database's backends waiting on a
    /// heavyweight lock (`Lock`), on a lightweight lock (`LWLock`), on I/O (`IO`), and active.
    var samples: Int
    var lockWaiting: Double
    var lwlockWaiting: Double
    var ioWaiting: Double
    var active: Double

    /// Cores busy on average: (PostgreSQL + Lethe CPU) / wall time.
    var coresBusy: Double? { postgresCPU.map { ($0 + letheCPU) / max(wallSeconds, 0.000_001) } }

    /// The columns `tableCells` fills, for a bench's table header.
    static let columns = ["PG CPU S", "LETHE CPU S", "CORES BUSY", "PG SHARE", "LOCK WAIT", "LWLOCK", "IO WAIT"]

    /// This cost's cells for `columns`.
    var tableCells: [String] {
        let pg = postgresCPU
        return [
            pg.map { String(format: "%.1f", $0) } ?? "-", String(format: "%.1f", letheCPU),
            coresBusy.map { String(format: "%.2f", $0) } ?? "-",
            pg.map { String(format: "%.0f%%", 100 * $0 / max($0 + letheCPU, 0.000_001)) } ?? "-",
            String(format: "%.2f", lockWaiting), String(format: "%.2f", lwlockWaiting),
            String(format: "%.2f", ioWaiting),
        ]
    }

    /// A one-line summary for progress output.
    var summary: String {
        "CPU PostgreSQL \(postgresCPU.map { String(format: "%.1f s", $0) } ?? "unknown (remote server)"), "
            + "Lethe \(String(format: "%.1f s", letheCPU)) over \(String(format: "%.1f s", wallSeconds)) wall; "
            + "backends waiting: lock \(String(format: "%.2f", lockWaiting)), LWLock \(String(format: "%.2f", lwlockWaiting)), "
            + "IO \(String(format: "%.2f", ioWaiting)) of \(String(format: "%.2f", active)) active"
    }
}

/// Measures a `BenchCost` around a run: `start` before the processes start, `sample` while
/// they run (every 100 ms or so), `finish` once they have exited and been waited for.
struct BenchCostMeter {
    private let started: ContinuousClock.Instant
    private let postmaster: Int32?
    private let postgresStart: Double?
    private let childrenStart: Double
    private let walStart: String
    private var samples = 0
    private var sums = (lock: 0, lwlock: 0, io: 0, active: 0)
    private var lastSample = ContinuousClock.now - .seconds(1)

    /// Starts measuring; `admin` is a connection to the server (any database).
    static func start(_ admin: ConnectionThread) async throws -> BenchCostMeter {
        let (backend, wal) = try await admin.run {
            try $0.query("SELECT pg_backend_pid(), pg_current_wal_lsn()::text")[0].decode((Int32, String).self)
        }
        let postmaster = ProcStat.read(backend).map(\.parent)
        return BenchCostMeter(
            started: .now, postmaster: postmaster, postgresStart: postmaster.flatMap(ProcStat.treeCPU),
            childrenStart: ProcStat.read(getpid())?.childrenCPU ?? 0, walStart: wal)
    }

    private init(
        started: ContinuousClock.Instant, postmaster: Int32?, postgresStart: Double?, childrenStart: Double,
        walStart: String
    ) {
        self.started = started
        self.postmaster = postmaster
        self.postgresStart = postgresStart
        self.childrenStart = childrenStart
        self.walStart = walStart
    }

    /// Samples the wait events of the database's other backends (at most every 100 ms).
    mutating func sample(_ database: ConnectionThread) async throws {
        guard ContinuousClock.now - lastSample >= .milliseconds(100) else { return }
        lastSample = .now
        let counts = try await database.run {
            try $0.query(
                """
                SELECT count(*) FILTER (WHERE wait_event_type = 'Lock')::int,
                       count(*) FILTER (WHERE wait_event_type = 'LWLock')::int,
                       count(*) FILTER (WHERE wait_event_type = 'IO')::int,
                       count(*) FILTER (WHERE state = 'active')::int
                FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
                """)[0].decode((Int, Int, Int, Int).self)
        }
        samples += 1
        sums = (sums.lock + counts.0, sums.lwlock + counts.1, sums.io + counts.2, sums.active + counts.3)
    }

    /// The cost since `start`; call after the bench's children exited and were waited for.
    func finish(_ admin: ConnectionThread) async throws -> BenchCost {
        let wall = RetentionBench.seconds(.now - started)
        let wal = try await RetentionBench.walSince(walStart, admin)
        var postgres: Double?
        if let postmaster, let before = postgresStart, let after = ProcStat.treeCPU(postmaster) {
            postgres = after - before
        }
        let children = (ProcStat.read(getpid())?.childrenCPU ?? childrenStart) - childrenStart
        let n = Double(max(samples, 1))
        return BenchCost(
            wallSeconds: wall, postgresCPU: postgres, letheCPU: children, walBytes: wal, samples: samples,
            lockWaiting: Double(sums.lock) / n, lwlockWaiting: Double(sums.lwlock) / n, ioWaiting: Double(sums.io) / n,
            active: Double(sums.active) / n)
    }
}

/// `/proc/<pid>/stat`: the fields the cost meter needs.
enum ProcStat {
    struct Fields {
        var parent: Int32
        /// utime + stime, seconds.
        var ownCPU: Double
        /// cutime + cstime (children waited for), seconds.
        var childrenCPU: Double
    }

    static let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// Reads one process's stat line; nil when it is gone or not on this machine.
    static func read(_ pid: Int32) -> Fields? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // After "pid (comm) ": state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17).
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 14, let parent = Int32(fields[1]), let utime = Double(fields[11]),
            let stime = Double(fields[12]), let cutime = Double(fields[13]), let cstime = Double(fields[14])
        else { return nil }
        return Fields(parent: parent, ownCPU: (utime + stime) / ticks, childrenCPU: (cutime + cstime) / ticks)
    }

    /// CPU seconds of `root` and its live children plus the children it already reaped
    /// (cutime/cstime: a backend that exited mid-run still counts).
    static func treeCPU(_ root: Int32) -> Double? {
        guard let rootFields = read(root) else { return nil }
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap { Int32($0) } ?? []
        let live = pids.compactMap { read($0) }.filter { $0.parent == root }.map(\.ownCPU).reduce(0, +)
        return rootFields.ownCPU + rootFields.childrenCPU + live
    }
}
