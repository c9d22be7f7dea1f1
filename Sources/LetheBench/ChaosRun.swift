import Foundation
import LetheCLI
import Postgres
import Store

/// One chaos run: the world (database, sites, processes), the faults, the quiet drain and
/// the checks. Runs on a thread of its own: everything in it blocks.
final class ChaosRun: @unchecked Sendable {
    let settings: ChaosSettings
    let cluster: DemoCluster
    private(set) var sshds: [DemoSSHD] = []
    private(set) var workers: [ChaosChild] = []
    private(set) var coordinators: [ChaosChild] = []
    private(set) var faults: [ChaosFault] = []
    private(set) var archiving: [String] = []
    private(set) var siteDirectories: [URL] = []
    private(set) var masterKeyFile = ""
    private var executable = ""
    private var environment: [String: String] = [:]
    let session: ChaosSession
    private let begun = ContinuousClock.now

    /// Lease and heartbeat of the run's workers (short, so a paused worker loses its tasks).
    static let leaseSeconds = 4.0

    private init(_ settings: ChaosSettings, cluster: DemoCluster) {
        self.settings = settings
        self.cluster = cluster
        session = ChaosSession(conninfo: cluster.conninfo())
    }

    /// Starts the run's PostgreSQL and runs; true when every check passed.
    static func run(_ settings: ChaosSettings) throws -> Bool {
        BenchReport.line(
            "chaos: seed \(settings.seed), \(settings.seconds)s of faults, \(settings.tenants) tenants, "
                + "\(settings.workers) workers × \(settings.concurrency) slots, 2 coordinators "
                + "(replay: lethe bench chaos --seed \(settings.seed) --duration \(settings.seconds)s "
                + "--tenants \(settings.tenants) --scale \(settings.scale) --workers \(settings.workers))")
        let cluster = try DemoCluster.start(settings: [
            "-c", "track_commit_timestamp=on", "-c", "max_connections=200",
        ])
        let run = ChaosRun(settings, cluster: cluster)
        run.say("PostgreSQL is up in \(cluster.directory.path) (Unix socket only)")
        defer { run.tearDown() }
        return try run.run()
    }

    /// Runs `body` on a new thread (blocking libpq and waits stay off the cooperative pool).
    static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { try body() }) }
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    var elapsed: Double { RetentionBench.seconds(ContinuousClock.now - begun) }
    func say(_ line: String) { Console.line(String(format: "[%7.1fs] ", elapsed) + line) }

    var conninfo: String { cluster.conninfo() }
    var directory: URL { cluster.directory }

    /// The whole run; true when every check passed.
    private func run() throws -> Bool {
        try setUp()
        var timeline = try session.run { try PolicyTimeline.load($0) }
        let mutator = ChaosMutator(
            conninfo: conninfo, seed: settings.seed &+ 1, accounts: mutatedAccounts,
            types: ["conversations", "audit_log", "webhook_calls", "person_presences"]
        ).start()
        try startProcesses()
        var schedule = ChaosSchedule(settings: settings, lease: Self.leaseSeconds)
        say("chaos: \(schedule.faultCount) faults scheduled over \(settings.seconds)s")
        try chaosPhase(&schedule)
        mutator.stop()
        while !mutator.isFinished { usleep(20_000) }
        let lifted = try liftArchivingBlocks()
        timeline.replay(mutator.changes + lifted)
        say("chaos: faults over; the mutator committed \(mutator.changes.count) changes; quiet drain")
        let quiet = try drain(timeline)
        let liveProcesses = (workers + coordinators).compactMap(\.pid)
        var checks = ChaosChecks(
            run: self, timeline: timeline, quietAt: quiet, livePids: Set(liveProcesses.map { Int($0) }))
        let processViolations = try session.run { try checks.processChecks(on: $0) }
        for child in workers + coordinators { child.stop() }
        let violations = try session.run { try checks.check(on: $0) } + processViolations
        checks.printReport(violations: violations, faults: faults, say: say)
        return violations.isEmpty
    }

    /// Accounts the second session changes: a third of them, and two archiving ones.
    var mutatedAccounts: [String] {
        (2...settings.tenants).filter { $0 % 3 == 0 || $0 == 5 || $0 == 11 }.map { "\($0)" }
    }

    /// Before the drain, the mutator's holds, suspensions and switches on archiving accounts
    /// are lifted (each change logged like the mutator's), so every archive job can reach
    /// `deleted` and the archive checks can ask that of every job.
    private func liftArchivingBlocks() throws -> [LoggedChange] {
        var changes: [LoggedChange] = []
        try session.run { connection in
            func logged(_ account: String, _ change: PolicyChange, _ sql: String, _ parameters: [String]) throws {
                try connection.execute("BEGIN")
                try connection.execute(sql, parameters)
                let xid = try connection.scalar("SELECT txid_current()", as: Int64.self)
                try connection.execute("COMMIT")
                let committed = try connection.scalar(
                    "SELECT (extract(epoch FROM pg_xact_commit_timestamp(($1::bigint % 4294967296)::text::xid)) * 1000000)::bigint",
                    [xid], as: Int64.self)
                changes.append(LoggedChange(at: committed, account: account, change: change))
            }
            for account in archiving {
                for row in try connection.query(
                    "SELECT id FROM lethe.holds WHERE account_id = $1 AND released_at IS NULL", [account])
                {
                    let id = try row.decode(Int64.self, at: 0)
                    try logged(account, .release(id: id), "SELECT lethe.release_hold($1::bigint)", ["\(id)"])
                }
                let (state, disabled) = try connection.query(
                    "SELECT state, retention_disabled FROM lethe.accounts WHERE account_id = $1", [account])[0]
                    .decode((String, Bool).self)
                if state != "active" {
                    try logged(account, .state("active"), "SELECT lethe.set_account_state($1, 'active')", [account])
                }
                if disabled {
                    try logged(
                        account, .retentionDisabled(false),
                        "SELECT lethe.operator_set_retention_disabled($1, false, 'chaos drain')", [account])
                }
            }
        }
        if !changes.isEmpty {
            say("lifted \(changes.count) holds, suspensions and switches on archiving accounts for the drain")
        }
        return changes
    }

    // MARK: - Setting up

    private func setUp() throws {
        let example = settings.example
        executable = try QueueBench.executablePath()
        environment = ChildEnvironment.with(databaseURL: conninfo)
        try session.run { connection in
            try Migrator(files: try MigrationSet.resolve(flag: nil, configured: nil).files).apply(connection)
            for file in ["schema.sql", "seed.sql"] {
                try connection.executeScript(
                    try String(contentsOf: example.appendingPathComponent(file), encoding: .utf8))
            }
            let rows = try connection.scalar(
                "SELECT app.seed_demo($1::int, $2::int)", [settings.tenants, settings.scale], as: Int64.self)
            say("loaded examples/contact-centre: \(settings.tenants) tenants, \(rows) rows")
        }
        masterKeyFile = directory.appendingPathComponent("master.key").path
        try DemoArchiving.writeSecret(DemoArchiving.randomHex(bytes: 32), to: masterKeyFile)
        for name in ["coordinator"] + (1...settings.workers).map({ "worker-\($0)" }) {
            try config(spool: spool(name)).write(toFile: configPath(name), atomically: true, encoding: .utf8)
        }
        try lethe(["policy", "sync"], config: "coordinator")
        try session.run { connection in
            try connection.withTransaction { try DemoCommand.accounts(tenants: settings.tenants, on: $0) }
            try connection.executeScript(ChaosChecks.auditDDL)
        }
        say("accounts: 2-3 gold, 4-6 silver; 7 keeps conversations 30d; 8 suspended; 9 on hold; 10 disabled")
        try setUpArchiving()
    }

    func configPath(_ name: String) -> String { directory.appendingPathComponent("\(name).yml").path }
    func spool(_ name: String) -> String { directory.appendingPathComponent("spool-\(name)").path }

    /// The example's configuration with quick checks, short leases and this process's spool.
    private func config(spool: String) throws -> String {
        let base = try String(contentsOf: settings.example.appendingPathComponent("lethe.yml"), encoding: .utf8)
            .replacingOccurrences(of: "check_interval: 1h", with: "check_interval: 10s")
            .replacingOccurrences(of: "check_interval: 15m", with: "check_interval: 10s")
        return base + """

            coordinator:
              tick_interval: 250ms
              rescue_interval: 1s
            worker:
              poll_interval: 250ms
              lease: \(Int(Self.leaseSeconds))s
              heartbeat_interval: 1s
              rescue_interval: 1s
              task_budget: 2s
              shutdown_grace: 5s
            queue:
              max_attempts: 1000
              retry_base: 200ms
              retry_max: 3s
            archive:
              master_key_file: \(masterKeyFile)
              spool_directory: \(spool)
              site_timeout: 5s
              upload_attempts: 2

            """
    }

    /// Two sshds, and every archiving account with a file:// site and one on each sshd.
    private func setUpArchiving() throws {
        let candidates = [5, 6, 11, 31, 51, 71, 91].filter { $0 <= settings.tenants }
        archiving = candidates.map { "\($0)" }
        for index in 1...2 {
            sshds.append(try DemoSSHD.start(in: directory.appendingPathComponent("sshd-\(index)")))
        }
        let sites = directory.appendingPathComponent("sites")
        siteDirectories =
            [sites.appendingPathComponent("file")] + (1...2).map { sites.appendingPathComponent("sftp-\($0)") }
        for account in archiving {
            let key = directory.appendingPathComponent("archive-key-\(account)").path
            try DemoArchiving.writeSecret("Chaos-Key-" + DemoArchiving.randomHex(bytes: 12), to: key)
            for site in siteDirectories {
                try FileManager.default.createDirectory(
                    at: site.appendingPathComponent(account), withIntermediateDirectories: true)
            }
            try lethe([
                "account", "site", "add", account, "file://" + siteDirectories[0].appendingPathComponent(account).path,
            ])
            for (index, sshd) in sshds.enumerated() {
                let path = siteDirectories[index + 1].appendingPathComponent(account).path
                try lethe([
                    "account", "site", "add", account, "sftp://\(sshd.user)@127.0.0.1:\(sshd.port)\(path)",
                    "--identity", sshd.identity, "--known-hosts", sshd.knownHosts,
                ])
            }
            try lethe(["account", "archive", account, "--key-file", key, "--enable"], config: "coordinator")
        }
        say(
            "archiving accounts \(archiving.joined(separator: ", ")): each to a file:// site and two sftp:// sites "
                + "(sshd on 127.0.0.1:\(sshds.map { "\($0.port)" }.joined(separator: " and :")))")
    }

    @discardableResult
    func lethe(_ arguments: [String], config: String = "coordinator") throws -> String {
        try ExternalProgram(
            path: executable, arguments: arguments + ["--config", configPath(config)], environment: environment
        ).run().output
    }

    private func startProcesses() throws {
        let logs = directory.appendingPathComponent("logs")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        for index in 1...2 {
            coordinators.append(
                ChaosChild(
                    name: "coordinator-\(index)", executable: executable,
                    arguments: ["coordinator", "--config", configPath("coordinator"), "--log-level", "warning"],
                    environment: environment, log: logs.appendingPathComponent("coordinator-\(index).log")))
        }
        for index in 1...settings.workers {
            workers.append(
                ChaosChild(
                    name: "worker-\(index)", executable: executable,
                    arguments: [
                        "worker", "--config", configPath("worker-\(index)"), "--concurrency", "\(settings.concurrency)",
                        "--log-level", "warning",
                    ],
                    environment: environment, log: logs.appendingPathComponent("worker-\(index).log")))
        }
        for child in coordinators + workers { try child.start() }
        say("started 2 coordinators and \(settings.workers) workers (logs in \(logs.path))")
    }

    fileprivate func tearDown() {
        for child in workers + coordinators { child.stop(grace: 5) }
        for sshd in sshds { sshd.stop() }
        session.close()
        cluster.stop(keep: settings.keep)
        if settings.keep { say("kept \(directory.path)") }
    }

    // MARK: - Faults

    private func chaosPhase(_ schedule: inout ChaosSchedule) throws {
        var random = ChaosRandom(seed: settings.seed)
        var nextHousekeeping = 0.0
        var nextProgress = 10.0
        var pending: [(at: Double, action: () throws -> Void)] = []
        let start = elapsed
        while true {
            let now = elapsed - start
            if now >= Double(settings.seconds) && schedule.isEmpty { break }
            for event in schedule.due(at: now) {
                try inject(event, at: now, random: &random, pending: &pending)
            }
            let due = pending.filter { $0.at <= now }
            pending.removeAll { $0.at <= now }
            for item in due { try item.action() }
            if now >= nextHousekeeping {
                housekeeping(startJobs: Int(now) % 15 < 2)
                nextHousekeeping = now + 2
            }
            if now >= nextProgress {
                progress()
                nextProgress = now + 10
            }
            usleep(100_000)
        }
        // Follow-ups still due (sshd back, a worker resumed) happen now.
        for item in pending { try item.action() }
    }

    private func record(_ kind: ChaosFault.Kind, _ target: String, at: Double) {
        faults.append(ChaosFault(at: at, kind: kind, target: target))
        say("fault \(faults.count): \(kind.rawValue) \(target)")
    }

    private func inject(
        _ kind: ChaosFault.Kind, at now: Double, random: inout ChaosRandom,
        pending: inout [(at: Double, action: () throws -> Void)]
    ) throws {
        switch kind {
        case .workerKill:
            let candidates = workers.filter { $0.isRunning && !$0.paused }
            guard let worker = candidates.randomElement(using: &random) else { return }
            let pid = worker.pid ?? 0
            worker.kill9()
            record(kind, "\(worker.name) (pid \(pid))", at: now)
            pending.append((now + Double.random(in: 0.5...2, using: &random), { try worker.start() }))
        case .coordinatorKill:
            let leader = try? session.run {
                try $0.query("SELECT pid FROM lethe.leader")
                    .first.map { try $0.decode(Int.self, at: 0) }
            }
            let target =
                coordinators.first { child in child.pid.map { Int($0) } == leader ?? nil }
                ?? coordinators.filter(\.isRunning).randomElement(using: &random)
            guard let target else { return }
            let pid = target.pid ?? 0
            target.kill9()
            record(
                kind,
                "\(target.name) (pid \(pid), \(leader.flatMap { $0 } == Int(pid) ? "the leader" : "leader unknown"))",
                at: now)
            pending.append((now + 2, { try target.start() }))
        case .postgresRestart:
            record(kind, "fast shutdown and start", at: now)
            session.close()
            try cluster.restart()
            say("PostgreSQL is up again")
        case .sshdStop:
            let sshd = sshds[0]
            sshd.stop()
            let seconds = ChaosSchedule.sshdOutage(settings.seconds)
            record(kind, "sshd on port \(sshd.port) for \(Int(seconds))s", at: now)
            pending.append(
                (
                    now + seconds,
                    { [self] in
                        try sshd.restart()
                        say("sshd on port \(sshd.port) is back")
                    }
                ))
        case .spoolDelete:
            guard let worker = workers.randomElement(using: &random) else { return }
            let path = spool(worker.name)
            try? FileManager.default.removeItem(atPath: path)
            record(kind, "\(worker.name): rm -rf \(path)", at: now)
        case .workerPause:
            let candidates = workers.filter { $0.isRunning && !$0.paused }
            guard let worker = candidates.randomElement(using: &random) else { return }
            worker.pause()
            let seconds = Self.leaseSeconds * 2 + 4
            record(
                kind,
                "\(worker.name) (pid \(worker.pid ?? 0)) SIGSTOP for \(Int(seconds))s (lease \(Int(Self.leaseSeconds))s)",
                at: now)
            pending.append(
                (
                    now + seconds,
                    { [self] in
                        worker.resume()
                        say("\(worker.name) continued (SIGCONT)")
                    }
                ))
        case .forbiddenDeletion:
            let key = try session.run { connection in
                try connection.query(
                    """
                    DELETE FROM app.audit_log WHERE id = (SELECT max(id) FROM app.audit_log WHERE account_id = 9)
                    RETURNING id::text
                    """
                ).first.map { try $0.decode(String.self, at: 0) }
            }
            record(
                kind, "app.audit_log key \(key ?? "-") of held account 9 (test-only; the checks must catch it)", at: now
            )
        }
    }

    /// Approves every archive job that waits for approval (and wakes paused ones), and
    /// starts a job for every archiving account without an open one.
    private func housekeeping(startJobs: Bool) {
        _ = try? session.run { connection in
            try connection.execute(
                """
                SELECT lethe.approve_archive_deletion(f.id)
                FROM lethe.archive_jobs j
                JOIN LATERAL (SELECT min(id) AS id FROM lethe.archive_files WHERE job_id = j.job_id) f ON f.id IS NOT NULL
                WHERE j.state = 'uploaded'
                """)
            if startJobs {
                try connection.execute(
                    """
                    SELECT lethe.start_archive_job(s.account_id) FROM lethe.archive_settings s
                    WHERE s.enabled AND NOT EXISTS (
                        SELECT 1 FROM lethe.archive_jobs j WHERE j.account_id = s.account_id AND j.state <> 'deleted')
                    """)
            }
        }
    }

    private func progress() {
        let line = try? session.run { connection in
            try connection.query(
                """
                SELECT (SELECT coalesce(sum(total_rows), 0)::bigint FROM lethe.deletion_records),
                       (SELECT count(*) FROM lethe.tasks WHERE state = 'running'),
                       (SELECT count(*) FROM lethe.tasks WHERE state IN ('available', 'failed') AND run_at <= now()),
                       (SELECT count(*) FROM lethe.archive_jobs WHERE state = 'deleted'),
                       (SELECT count(*) FROM lethe.archive_jobs)
                """)[0].decode((Int64, Int64, Int64, Int64, Int64).self)
        }
        guard let line else {
            say("progress: database unreachable")
            return
        }
        let (rows, running, due, done, jobs) = line
        say(
            "progress: \(faults.count) faults, \(rows) rows deleted, tasks \(running) running / \(due) due, "
                + "archive jobs \(done) of \(jobs) deleted")
    }

    // MARK: - Drain

    /// Everything back up, then until nothing eligible is left and every archive job is
    /// done (at most 5 minutes or the run's length); returns the moment the drain began
    /// (microseconds since 1970).
    private func drain(_ timeline: PolicyTimeline) throws -> Int64 {
        for child in workers + coordinators {
            if child.paused { child.resume() }
            if !child.isRunning { try child.start() }
        }
        let quiet = try session.run {
            try $0.scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint", as: Int64.self)
        }
        var left = ChaosChecks(run: self, timeline: timeline, quietAt: quiet, livePids: [])
        housekeeping(startJobs: false)
        _ = try session.run { connection in
            try connection.execute(
                "SELECT lethe.start_archive_job(account_id) FROM lethe.archive_settings WHERE enabled")
        }
        let limit = Double(max(300, settings.seconds))
        let deadline = elapsed + limit
        var calm = 0
        var nextProgress = elapsed + 10
        while elapsed < deadline {
            housekeeping(startJobs: false)
            let openJobs = try? session.run { connection in
                try connection.scalar(
                    "SELECT count(*) FROM lethe.archive_jobs WHERE state <> 'deleted'", as: Int64.self)
            }
            let remaining = try? session.run { try left.leftBehind(on: $0, record: false) }
            // Rows of archiving accounts that became eligible since (a person once its
            // presences went) need another job.
            if openJobs == 0, let remaining {
                let accounts = Set(remaining.compactMap(\.account)).intersection(archiving)
                for account in accounts.sorted() {
                    _ = try? session.run { try $0.execute("SELECT lethe.start_archive_job($1)", [account]) }
                }
            }
            if openJobs == 0, let remaining, remaining.isEmpty {
                calm += 1
                if calm >= 2 { break }
            } else {
                calm = 0
            }
            if elapsed >= nextProgress {
                progress()
                nextProgress = elapsed + 10
            }
            usleep(3_000_000)
        }
        say(calm >= 2 ? "drained: no archive job open, nothing eligible left" : "drain stopped after \(Int(limit))s")
        return quiet
    }
}

/// A session of the run's own that reconnects after PostgreSQL restarts.
final class ChaosSession {
    let conninfo: String
    private var connection: Connection?

    init(conninfo: String) { self.conninfo = conninfo }

    func run<T>(_ body: (Connection) throws -> T) throws -> T {
        if connection == nil { connection = try Connection.connect(conninfo, applicationName: "lethe-chaos") }
        do {
            return try body(connection!)
        } catch {
            close()
            throw error
        }
    }

    func close() {
        connection?.close()
        connection = nil
    }
}
