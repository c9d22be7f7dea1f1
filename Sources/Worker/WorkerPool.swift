import Foundation
import LetheMetrics
import Logging
import Postgres
import Retention
import ServiceLifecycle
import Store
import Synchronization

/// A worker process: claims due tasks in batches, runs them in `concurrency` slots through
/// the handler registry, extends their leases by heartbeat, and acknowledges them in
/// batches. On graceful shutdown (SIGTERM) it stops claiming, lets the tasks in hand finish
/// within the grace period, releases the rest, and marks itself stopped.
///
/// Threads: each claim loop has its own connection; the heartbeat has its own (so a claim
/// stuck on a lock never delays it) and so does LISTEN; each slot gets one when a handler
/// asks. A watchdog treats every task in hand as lost once no heartbeat has succeeded for a
/// lease, whatever the connections are doing.
public final class WorkerPool: Service {
    public let id: UUID
    private let conninfo: String
    private let configuration: WorkerConfiguration
    private let handlers: [TaskKind: any TaskHandler]
    private let queue: TaskQueue
    private let logger: Logger
    private let version: String
    private let monitor: HealthMonitor?

    private struct State {
        var running: [TaskHold: TaskContext] = [:]
        var acks: [TaskAcknowledgement] = []
        var freeSlots: [Int]
        var stopping = false
        var finished = false
        /// When the last heartbeat that succeeded was sent.
        var lastBeat = ContinuousClock.now
        var tasksRun = 0
    }
    private let state: Mutex<State>
    private let wakeup = Wakeup()

    public init(
        conninfo: String, configuration: WorkerConfiguration, handlers: [any TaskHandler], queue: TaskQueue,
        logger: Logger, version: String, id: UUID = UUID(), monitor: HealthMonitor? = nil
    ) {
        precondition(configuration.concurrency > 0, "concurrency must be positive")
        precondition(
            configuration.claimBatch > 0 && configuration.claimLoops > 0, "claim batch and loops must be positive")
        self.id = id
        self.conninfo = conninfo
        self.configuration = configuration
        self.handlers = Dictionary(handlers.map { ($0.kind, $0) }, uniquingKeysWith: { _, last in last })
        self.queue = queue
        var logger = logger
        logger[metadataKey: LogKey.worker] = "\(id)"
        self.logger = logger
        self.version = version
        self.monitor = monitor
        self.state = Mutex(State(freeSlots: Array((0..<configuration.concurrency).reversed())))
    }

    /// Tasks this process has run to an outcome (for tests and benchmarks).
    public var tasksRun: Int { state.withLock { $0.tasksRun } }

    private var kinds: [String] { handlers.keys.map(\.rawValue).sorted() }

    public func run() async throws {
        let controls = (0..<configuration.claimLoops).map {
            ConnectionThread(conninfo: conninfo, name: "lethe-claim-\($0)")
        }
        let beat = ConnectionThread(conninfo: conninfo, name: "lethe-heartbeat")
        let slots = SlotDatabases(conninfo: conninfo)
        let listener = configuration.listen ? ConnectionThread(conninfo: conninfo, name: "lethe-listen") : nil
        let registration = ProcessRegistry.Registration(
            id: id, role: "worker", slots: configuration.concurrency, lease: configuration.lease, version: version)
        do {
            try await beat.run { try ProcessRegistry().register(registration, on: $0) }
        } catch {
            for thread in controls + [beat] { await thread.shutdown() }
            await listener?.shutdown()
            throw error
        }
        state.withLock { $0.lastBeat = .now }
        logger.info(
            "worker started", metadata: ["slots": "\(configuration.concurrency)", "kinds": "\(kinds)"])

        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withDiscardingTaskGroup { group in
                    group.addTask { await self.heartbeatLoop(beat, rescueOn: controls[0]) }
                    group.addTask { await self.watchdogLoop() }
                    if let listener { group.addTask { await self.listenLoop(listener) } }
                    await withDiscardingTaskGroup { loops in
                        for control in controls {
                            loops.addTask {
                                // Each loop runs the handlers it dispatched in a group of its own.
                                await withDiscardingTaskGroup { handlers in
                                    await self.claimLoop(control, slots: slots, group: &handlers)
                                    await self.drain(control, group: &handlers)
                                }
                            }
                        }
                    }
                    // Acknowledge what is left while the heartbeat still holds the leases.
                    await self.finalFlush(beat)
                    self.state.withLock { $0.finished = true }
                    group.cancelAll()  // ends the heartbeat, watchdog and listener loops
                }
            } onGracefulShutdown: {
                self.beginStopping()
            }
        } onCancel: {
            self.beginStopping()
        }

        do {
            try await beat.run { try ProcessRegistry().markStopped(self.id, on: $0) }
        } catch {
            logger.warning("could not mark the worker stopped", metadata: [LogKey.error: "\(error)"])
        }
        await slots.shutdown()
        await listener?.shutdown()
        for thread in controls + [beat] { await thread.shutdown() }
        logger.info("worker stopped", metadata: ["tasks_run": "\(tasksRun)"])
    }

    /// Stops claiming and tells running handlers to stop at their next safe point.
    public func beginStopping() {
        let contexts = state.withLock { state in
            state.stopping = true
            return Array(state.running.values)
        }
        contexts.forEach { $0.markStopping() }
        wakeup.signal()
    }

    private var isStopping: Bool { state.withLock { $0.stopping } || Task.isCancelled }

    // MARK: - Claiming

    private func claimLoop(_ control: ConnectionThread, slots: SlotDatabases, group: inout DiscardingTaskGroup) async {
        let queue = self.queue
        let (worker, lease, kinds) = (id, configuration.lease, self.kinds)
        while !isStopping {
            // No new claims while heartbeats fail: tasks claimed now would be marked lost.
            if state.withLock({ ContinuousClock.now - $0.lastBeat >= lease }) {
                await wakeup.wait(timeout: configuration.pollInterval)
                continue
            }
            // Reserve the slots before claiming: the claim loops share them.
            let reserved = state.withLock { state -> [Int] in
                let count = min(state.freeSlots.count, configuration.claimBatch)
                defer { state.freeSlots.removeLast(count) }
                return Array(state.freeSlots.suffix(count))
            }
            if reserved.isEmpty {
                await wakeup.wait(timeout: configuration.pollInterval)
                continue
            }
            let limit = reserved.count
            // Acknowledge what finished since the last cycle in the same statement.
            let acks = takeAcknowledgements()
            let claimed: [ClaimedTask]
            let claimStarted = ContinuousClock.now
            do {
                claimed = try await control.run {
                    try queue.claim(
                        limit: limit, worker: worker, lease: lease, kinds: kinds, acknowledging: acks, on: $0)
                }
                LetheMetric.claimDuration.observe(.now - claimStarted)
                for task in claimed { LetheMetric.tasksClaimed.increment(task.kind.rawValue) }
            } catch {
                logger.warning("claim failed; retrying", metadata: [LogKey.error: "\(error)"])
                restoreAcknowledgements(acks)
                releaseSlots(reserved)
                await wakeup.wait(timeout: configuration.pollInterval)
                continue
            }
            for (task, slot) in zip(claimed, reserved) { start(task, slot: slot, slots: slots, group: &group) }
            releaseSlots(Array(reserved.dropFirst(claimed.count)))
            if claimed.count == limit { continue }  // a full batch: more may be due
            // Tasks this cycle gave back (yielded or released) became due after the claim's
            // snapshot: claim again at once rather than after a poll interval.
            if acks.contains(where: \.requeuesNow) { continue }
            if claimed.isEmpty, configuration.untilIdle, await isIdle(control) {
                logger.info("nothing due, queued or running: exiting (--until-idle)")
                state.withLock { $0.stopping = true }
                wakeup.signal()
                break
            }
            await wakeup.wait(timeout: configuration.pollInterval)
        }
    }

    private func isIdle(_ control: ConnectionThread) async -> Bool {
        let busy = state.withLock { !$0.running.isEmpty || !$0.acks.isEmpty }
        if busy { return false }
        let (queue, kinds) = (self.queue, self.kinds)
        return (try? await control.run { try queue.isIdle(kinds: kinds, on: $0) }) ?? false
    }

    private func releaseSlots(_ slots: [Int]) {
        guard !slots.isEmpty else { return }
        state.withLock { $0.freeSlots.append(contentsOf: slots) }
    }

    private func start(_ task: ClaimedTask, slot: Int, slots: SlotDatabases, group: inout DiscardingTaskGroup) {
        let deadline = ContinuousClock.now + configuration.taskBudget
        let context = state.withLock { state in
            let context = TaskContext(
                task: task, logger: logger, workerID: id, deadline: deadline, slot: slot, slots: slots)
            state.running[task.hold] = context
            if state.stopping { context.markStopping() }
            return context
        }
        group.addTask { await self.execute(task, context: context) }
    }

    private func execute(_ task: ClaimedTask, context: TaskContext) async {
        let started = ContinuousClock.now
        let outcome: TaskOutcome
        if isStopping {
            outcome = .released  // claimed as the shutdown began: give it back untouched
        } else if let handler = handlers[task.kind] {
            do {
                let progress = try await handler.run(task, context: context)
                outcome = progress == .done ? .succeeded : .yielded()
            } catch let failure as PermanentTaskFailure {
                outcome = .dead(error: failure.description)
            } catch {
                // Cancelled at shutdown, however the handler wrapped it: release, do not count.
                if error is CancellationError || Task.isCancelled {
                    outcome = .released
                } else {
                    outcome = .failed(
                        error: String(describing: error),
                        retryAfter: configuration.retry.delay(afterAttempt: task.attempt))
                }
            }
        } else {
            outcome = .dead(error: "no handler for task kind \(task.kind) in this worker")
        }
        if context.leaseLost {
            context.logger.warning("lease lost before the task finished; its acknowledgement will be ignored")
        }
        TaskReport(task: task, outcome: outcome, counts: context.counts, duration: .now - started)
            .record(logger: context.logger)
        state.withLock { state in
            state.running[task.hold] = nil
            state.acks.append(TaskAcknowledgement(task.hold, outcome: outcome))
            state.freeSlots.append(context.slot)
            state.tasksRun += 1
        }
        wakeup.signal()
    }

    /// Pending acknowledgements, sorted by task id (the heartbeat locks rows in that order too).
    private func takeAcknowledgements() -> [TaskAcknowledgement] {
        state.withLock { state in
            defer { state.acks.removeAll(keepingCapacity: true) }
            return state.acks.sorted { $0.id < $1.id }
        }
    }

    private func restoreAcknowledgements(_ acks: [TaskAcknowledgement]) {
        guard !acks.isEmpty else { return }
        state.withLock { $0.acks.insert(contentsOf: acks, at: 0) }
    }

    /// Sends pending acknowledgements on `connection`; true when none are left.
    @discardableResult
    private func flushAcknowledgements(_ connection: ConnectionThread) async -> Bool {
        let acks = takeAcknowledgements()
        guard !acks.isEmpty else { return true }
        let (queue, worker) = (self.queue, id)
        do {
            try await connection.run { try queue.acknowledge(acks, worker: worker, on: $0) }
            return true
        } catch {
            // Keep them: the heartbeat still holds their leases, and the next flush retries.
            logger.warning("acknowledging \(acks.count) tasks failed; will retry", metadata: [LogKey.error: "\(error)"])
            restoreAcknowledgements(acks)
            return false
        }
    }

    /// The last acknowledgements, retried with backoff for up to one lease (the heartbeat
    /// keeps their leases meanwhile); after that the tasks are left to the rescuer.
    private func finalFlush(_ connection: ConnectionThread) async {
        let deadline = ContinuousClock.now + configuration.lease
        var pause: Duration = .milliseconds(200)
        while !(await flushAcknowledgements(connection)), ContinuousClock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: pause)
            pause = min(pause * 2, .seconds(2))
        }
    }

    // MARK: - Shutdown

    /// Waits up to the grace period for running tasks, acknowledging as they finish; then
    /// cancels what is left: their running statements are cancelled on the server, and the
    /// handlers release their tasks.
    private func drain(_ control: ConnectionThread, group: inout DiscardingTaskGroup) async {
        let deadline = ContinuousClock.now + configuration.shutdownGrace
        while state.withLock({ !$0.running.isEmpty }), ContinuousClock.now < deadline, !Task.isCancelled {
            await flushAcknowledgements(control)
            await wakeup.wait(timeout: .milliseconds(100))
        }
        let left = state.withLock { $0.running.count }
        if left > 0 {
            logger.warning("shutdown grace ran out; releasing \(left) tasks")
            group.cancelAll()
            let hardDeadline = ContinuousClock.now + .seconds(10)
            while state.withLock({ !$0.running.isEmpty }), ContinuousClock.now < hardDeadline {
                try? await Task.sleep(for: .milliseconds(50))  // not Wakeup: it returns at once when cancelled
            }
        }
        await flushAcknowledgements(control)
    }

    // MARK: - Heartbeat, watchdog and LISTEN

    /// Extends leases on `beat`, and every `rescueInterval` rescues expired ones on
    /// `rescueOn` (a claim connection, so a large rescue never delays a beat).
    ///
    /// The coordinator's `Rescuer` rescues too; this second rescuer stays because a worker
    /// may run with no coordinator at all (`lethe worker` alone, as docs/queue.md allows), and
    /// `worker.rescue_interval` is tuned apart from `coordinator.rescue_interval` (tests run
    /// it at 1 s beside a 5 s coordinator). Both run the same `UPDATE … SKIP LOCKED`, so a
    /// task is rescued once whichever runs first; a rescue here also wakes this worker's
    /// slots at once, which the coordinator cannot do.
    private func heartbeatLoop(_ beat: ConnectionThread, rescueOn: ConnectionThread) async {
        let queue = self.queue
        let (worker, lease) = (id, configuration.lease)
        var lastRescue = ContinuousClock.now
        while !state.withLock({ $0.finished }) {
            do { try await Task.sleep(for: configuration.heartbeatInterval) } catch { return }
            // Tasks in hand, and finished ones whose acknowledgement is not sent yet.
            // Sorted by id, as acknowledgements are, so the two connections lock rows in one order.
            let held = state.withLock { state in
                (Array(state.running.keys) + state.acks.map { TaskHold(id: $0.id, claim: $0.claim) }).sorted {
                    $0.id < $1.id
                }
            }
            let sent = ContinuousClock.now
            do {
                let stillHeld = try await beat.run {
                    try queue.heartbeat(worker: worker, holding: held, lease: lease, on: $0)
                }
                let lost = state.withLock { state -> [TaskContext] in
                    state.lastBeat = max(state.lastBeat, sent)
                    return held.filter { !stillHeld.contains($0) }.compactMap { state.running[$0] }
                }
                for context in lost {
                    context.markLeaseLost()
                    context.logger.warning("lease lost: the task was rescued or cancelled")
                }
            } catch {
                logger.warning("heartbeat failed", metadata: [LogKey.error: "\(error)"])
            }
            await publishThrottle(beat)
            if configuration.rescueInterval > .zero, ContinuousClock.now - lastRescue >= configuration.rescueInterval {
                lastRescue = .now
                if let rescued = try? await rescueOn.run({ try queue.rescueExpired(on: $0) }), !rescued.isEmpty {
                    logger.notice("rescued \(rescued.count) tasks whose lease expired")
                    wakeup.signal()
                }
            }
        }
    }

    /// Records in `lethe.workers` why retention is throttled (or that it is not) when that
    /// changed: `monitor` (the retention handler's) knows, this process's row is written here.
    private func publishThrottle(_ beat: ConnectionThread) async {
        guard let monitor, let publication = monitor.publication() else { return }
        let worker = id
        do {
            try await beat.run {
                try ProcessRegistry().recordThrottle(
                    worker, reasons: publication.reasons, throttledFor: publication.throttledFor,
                    detail: publication.detail, on: $0)
            }
            monitor.published(publication)
        } catch {
            logger.warning("could not record the throttle state", metadata: [LogKey.error: "\(error)"])
        }
    }

    /// Marks every task in hand lost once no heartbeat has succeeded for a lease, even when
    /// the heartbeat call itself hangs (a half-open connection, a lock wait).
    private func watchdogLoop() async {
        let lease = configuration.lease
        let interval = max(configuration.heartbeatInterval / 2, .milliseconds(100))
        var warned = false
        while !state.withLock({ $0.finished }) {
            do { try await Task.sleep(for: interval) } catch { return }
            let expired = state.withLock { state -> [TaskContext] in
                ContinuousClock.now - state.lastBeat >= lease ? Array(state.running.values) : []
            }
            if !expired.isEmpty, !warned {
                logger.error(
                    "no heartbeat succeeded for a whole lease: treating \(expired.count) tasks in hand as lost")
            }
            warned = !expired.isEmpty
            expired.forEach { $0.markLeaseLost() }
        }
    }

    private func listenLoop(_ listener: ConnectionThread) async {
        var listeningOn: UUID?
        let timeout = configuration.pollInterval
        while !state.withLock({ $0.finished }), !Task.isCancelled {
            let known = listeningOn
            do {
                let heard = try await listener.run { connection -> (UUID, Bool)? in
                    // LISTEN belongs to a session: a reconnected one must LISTEN again. Through a
                    // pooler (PgBouncer in transaction mode) the session is not ours to keep.
                    if connection.sessionID != known {
                        if try connection.isThroughPooler() { return nil }
                        try connection.listen(TaskQueue.channel)
                    }
                    let first = try connection.waitForNotification(timeout: timeout)
                    if first != nil { _ = try connection.pendingNotifications() }  // coalesce a burst
                    return (connection.sessionID, first != nil)
                }
                guard let (session, woke) = heard else {
                    logger.warning(
                        """
                        worker.listen is on but database.url goes through a connection pooler (such as PgBouncer), \
                        where LISTEN does not keep its session: not listening, polling every worker.poll_interval; \
                        run workers behind a pooler with --poll-only (or worker.listen: false)
                        """)
                    return
                }
                listeningOn = session
                if woke { wakeup.signal() }
            } catch {
                listeningOn = nil
                logger.warning("LISTEN connection failed; polling meanwhile", metadata: [LogKey.error: "\(error)"])
                try? await Task.sleep(for: timeout)
            }
        }
    }
}
