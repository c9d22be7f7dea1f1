import Foundation
import LetheMetrics
import Logging
import Postgres
import Retention
import ServiceLifecycle
import Store
import Synchronization

/// A coordinator process. Any number may run; the one holding the leader advisory lock
/// (on its own session, so a dead leader releases it at once) enqueues due work, rescues
/// expired leases and prunes finished tasks. The others check every tick and take over.
///
/// One Service made of small parts that share the coordinator's session: `Leadership`
/// (the lock and `lethe.leader`), `Rescuer`, `Pruner` and `Scheduler`, each at its own
/// interval (the scheduler every tick).
public final class CoordinatorService: Service {
    /// The session advisory lock the leader holds ("lethlead" in ASCII).
    public static let leaderLockKey: Int64 = Leadership.lockKey

    public let id: UUID
    private let conninfo: String
    private let configuration: CoordinatorConfiguration
    private let queue: TaskQueue
    private let leadership: Leadership
    private let rescuer: Rescuer
    private let pruner: Pruner
    private let scheduler: Scheduler
    private let logger: Logger
    private let version: String
    private let leading = Mutex(false)

    public init(
        conninfo: String, configuration: CoordinatorConfiguration, queue: TaskQueue, ticks: [any SchedulerTick] = [],
        logger: Logger, version: String, id: UUID = UUID()
    ) {
        self.id = id
        self.conninfo = conninfo
        self.configuration = configuration
        self.queue = queue
        leadership = Leadership(process: id)
        rescuer = Rescuer(queue: queue, interval: configuration.rescueInterval)
        pruner = Pruner(
            queue: queue, interval: configuration.pruneInterval, keepFinished: configuration.keepFinished,
            keepDead: configuration.keepDead, batch: configuration.pruneBatch)
        scheduler = Scheduler(queue: queue, ticks: ticks)
        var logger = logger
        logger[metadataKey: LogKey.worker] = "\(id)"
        self.logger = logger
        self.version = version
    }

    /// True while this process leads.
    public var isLeader: Bool { leading.withLock { $0 } }

    /// What one tick did.
    struct TickReport: Sendable {
        var session: UUID
        var leading: Bool
        var errors: [String] = []
        var becameLeader = false
        var scheduled = 0
        var rescued = 0
        var pruned = 0
        var idle = false
    }

    public func run() async throws {
        // Server-side keepalives too: if this host vanishes, PostgreSQL ends the session (and
        // releases the leader lock) within about 25 s instead of the kernel's two hours.
        let database = ConnectionThread(
            conninfo: conninfo, name: "lethe-coordinator",
            defaults: [("options", "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3")])
        let registration = ProcessRegistry.Registration(
            id: id, role: "coordinator", slots: 0, lease: configuration.lease, version: version)
        do {
            // The leader lock is a session advisory lock: a transaction-pooling PgBouncer would
            // hand its session to other clients between statements (two leaders). Refuse any
            // pooler rather than guess its mode. PgBouncer also refuses the keepalive
            // `options`; Connection.connect then drops them (optionsRefused).
            let (pooled, optionsRefused) = try await database.run { (try $0.isThroughPooler(), $0.optionsRefused) }
            if pooled { throw CoordinatorConnectionError.throughPooler }
            if optionsRefused {
                logger.warning(
                    "the server refused the startup parameter options: server-side TCP keepalives are off for the coordinator's session"
                )
            }
            try await database.run { try ProcessRegistry().register(registration, on: $0) }
        } catch {
            await database.shutdown()
            throw error
        }
        LetheMetric.leader.set(0)
        logger.info("coordinator started")
        var leaderSession: UUID?
        let clock = ContinuousClock()
        var lastRescue = clock.now - rescuer.interval
        var lastPrune = clock.now - pruner.interval

        let stopping = Mutex(false)
        await withGracefulShutdownHandler {
            while !Task.isCancelled, !stopping.withLock({ $0 }) {
                let rescueDue = clock.now - lastRescue >= rescuer.interval
                let pruneDue = clock.now - lastPrune >= pruner.interval
                do {
                    let report = try await tick(
                        database, leaderSession: leaderSession, rescue: rescueDue, prune: pruneDue)
                    leaderSession = report.leading ? report.session : nil
                    leading.withLock { $0 = report.leading }
                    LetheMetric.leader.set(report.leading ? 1 : 0)
                    if report.becameLeader { logger.notice("this coordinator is now the leader") }
                    if report.leading {
                        if rescueDue { lastRescue = clock.now }
                        if pruneDue { lastPrune = clock.now }
                    }
                    log(report)
                    for problem in report.errors {
                        logger.warning("leader duty failed", metadata: [LogKey.error: "\(problem)"])
                    }
                    if configuration.untilIdle, report.idle {
                        logger.info("nothing due, queued or running: exiting (--until-idle)")
                        return
                    }
                } catch {
                    // A lost session lost the lock with it; any other error leaves the lock
                    // (and so leadership) where it was.
                    let sessionLost = (error as? PostgresError)?.isConnectionLost ?? true
                    if sessionLost {
                        if leaderSession != nil { logger.warning("lost the database session: no longer the leader") }
                        leaderSession = nil
                        leading.withLock { $0 = false }
                        LetheMetric.leader.set(0)
                    }
                    logger.warning("coordinator tick failed", metadata: [LogKey.error: "\(error)"])
                }
                do { try await Task.sleep(for: configuration.tickInterval) } catch { return }
            }
        } onGracefulShutdown: {
            stopping.withLock { $0 = true }
        }

        let (id, leadership, wasLeading) = (self.id, self.leadership, leaderSession != nil)
        do {
            try await database.run { connection in
                if wasLeading { try leadership.stepDown(on: connection) }
                try ProcessRegistry().markStopped(id, on: connection)
            }
        } catch {
            logger.warning("could not step down cleanly", metadata: [LogKey.error: "\(error)"])
        }
        leading.withLock { $0 = false }
        await database.shutdown()
        logger.info("coordinator stopped")
    }

    /// One tick on the coordinator's own session: keep or take leadership, then, as leader,
    /// rescue, prune and enqueue due work. Once leadership is known, a failing duty is
    /// recorded in the report and the others still run: one broken scheduler tick must not
    /// stop rescue and pruning.
    private func tick(
        _ database: ConnectionThread, leaderSession: UUID?, rescue: Bool, prune: Bool
    ) async throws
        -> TickReport
    {
        let (id, queue, configuration) = (self.id, self.queue, self.configuration)
        let (leadership, rescuer, pruner, scheduler) = (self.leadership, self.rescuer, self.pruner, self.scheduler)
        return try await database.run { connection in
            var report = TickReport(session: connection.sessionID, leading: false)
            try ProcessRegistry().heartbeat(id, on: connection)
            (report.leading, report.becameLeader) = try leadership.elect(leaderSession: leaderSession, on: connection)
            func duty(_ name: String, _ body: () throws -> Void) {
                do { try body() } catch { report.errors.append("\(name): \(error)") }
            }
            if report.leading {
                duty("leader record") { try leadership.record(on: connection) }
                if rescue { duty("rescue") { report.rescued = try rescuer.run(on: connection) } }
                if prune { duty("prune") { report.pruned = try pruner.run(on: connection) } }
                report.scheduled += scheduler.run(on: connection) { name, error in
                    report.errors.append("\(name): \(error)")
                }
            }
            if configuration.untilIdle { duty("idle check") { report.idle = try queue.isIdle(on: connection) } }
            // A session that broke during the duties held the lock no more.
            if connection.isBroken { report.leading = false }
            return report
        }
    }

    private func log(_ report: TickReport) {
        if report.scheduled > 0 { logger.debug("enqueued \(report.scheduled) scheduled tasks") }
        if report.rescued > 0 { logger.notice("rescued \(report.rescued) tasks whose lease expired") }
        if report.pruned > 0 { logger.info("pruned \(report.pruned) finished tasks") }
    }
}
