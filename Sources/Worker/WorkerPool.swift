import Foundation
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
/// Threads: claims, acknowledgements and heartbeats share one dedicated connection thread;
/// the LISTEN connection has its own; each slot gets its own when a handler asks for one.
public final class WorkerPool: Service {
    public let id: UUID
    private let conninfo: String
    private let configuration: WorkerConfiguration
    private let handlers: [String: any TaskHandler]
    private let queue: TaskQueue
    private let logger: Logger
    private let version: String

    private struct Running {
        var attempt: Int
        var context: TaskContext
    }
    private struct State {
        var running: [Int64: Running] = [:]
        var acks: [TaskAcknowledgement] = []
        var freeSlots: [Int]
        var stopping = false
        var finished = false
        var lastHeartbeat = ContinuousClock.now
        var tasksRun = 0
    }
    private let state: Mutex<State>
    private let wakeup = Wakeup()

    public init(
        conninfo: String, configuration: WorkerConfiguration, handlers: [any TaskHandler], queue: TaskQueue,
        logger: Logger, version: String, id: UUID = UUID()
    ) {
        precondition(configuration.concurrency > 0, "concurrency must be positive")
        self.id = id
        self.conninfo = conninfo
        self.configuration = configuration
        self.handlers = Dictionary(handlers.map { ($0.kind, $0) }, uniquingKeysWith: { _, last in last })
        self.queue = queue
        var logger = logger
        logger[metadataKey: LogKey.worker] = "\(id)"
        self.logger = logger
        self.version = version
        self.state = Mutex(State(freeSlots: Array((0..<configuration.concurrency).reversed())))
    }

    /// Tasks this process has run to an outcome (for tests and benchmarks).
    public var tasksRun: Int { state.withLock { $0.tasksRun } }

    public func run() async throws {
        let controls = (0..<max(configuration.claimLoops, 1)).map {
            ConnectionThread(conninfo: conninfo, name: "lethe-claim-\($0)")
        }
        let control = controls[0]  // also heartbeats and registers
        let slots = SlotDatabases(conninfo: conninfo)
        let listener = configuration.listen ? ConnectionThread(conninfo: conninfo, name: "lethe-listen") : nil
        let registration = ProcessRegistry.Registration(
            id: id, role: "worker", slots: configuration.concurrency, lease: configuration.lease, version: version)
        do {
            try await control.run { try ProcessRegistry().register(registration, on: $0) }
        } catch {
            for control in controls { await control.shutdown() }
            await listener?.shutdown()
            throw error
        }
        logger.info(
            "worker started",
            metadata: ["slots": "\(configuration.concurrency)", "kinds": "\(handlers.keys.sorted())"])

        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.heartbeatLoop(control) }
                if let listener { group.addTask { await self.listenLoop(listener) } }
                await withDiscardingTaskGroup { loops in
                    for loopControl in controls {
                        loops.addTask {
                            // Each loop runs the handlers it dispatched in a group of its own.
                            await withDiscardingTaskGroup { handlers in
                                await self.claimLoop(loopControl, slots: slots, group: &handlers)
                                await self.drain(loopControl, group: &handlers)
                            }
                        }
                    }
                }
                self.state.withLock { $0.finished = true }
                group.cancelAll()  // ends the heartbeat and listener loops
            }
        } onGracefulShutdown: {
            self.beginStopping()
        }

        await flushAcknowledgements(control)
        do {
            try await control.run { try ProcessRegistry().markStopped(self.id, on: $0) }
        } catch {
            logger.warning("could not mark the worker stopped", metadata: [LogKey.error: "\(error)"])
        }
        await slots.shutdown()
        await listener?.shutdown()
        for control in controls { await control.shutdown() }
        logger.info("worker stopped", metadata: ["tasks_run": "\(tasksRun)"])
    }

    /// Stops claiming and tells running handlers to stop at their next safe point.
    public func beginStopping() {
        let contexts = state.withLock { state in
            state.stopping = true
            return state.running.values.map(\.context)
        }
        contexts.forEach { $0.markStopping() }
        wakeup.signal()
    }

    private var isStopping: Bool { state.withLock { $0.stopping } }

    // MARK: - Claiming

    private func claimLoop(_ control: ConnectionThread, slots: SlotDatabases, group: inout DiscardingTaskGroup) async {
        let queue = self.queue
        let (worker, lease) = (id, configuration.lease)
        let kinds = handlers.keys.sorted()
        while !isStopping {
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
            do {
                claimed = try await control.run {
                    try queue.claim(
                        limit: limit, worker: worker, lease: lease, kinds: kinds, acknowledging: acks, on: $0)
                }
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
                break
            }
            await wakeup.wait(timeout: configuration.pollInterval)
        }
    }

    private func isIdle(_ control: ConnectionThread) async -> Bool {
        let busy = state.withLock { !$0.running.isEmpty || !$0.acks.isEmpty }
        if busy { return false }
        let queue = self.queue
        return (try? await control.run { try queue.isIdle(on: $0) }) ?? false
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
            state.running[task.id] = Running(attempt: task.attempt, context: context)
            if state.stopping { context.markStopping() }
            return context
        }
        group.addTask { await self.execute(task, context: context) }
    }

    private func execute(_ task: ClaimedTask, context: TaskContext) async {
        let outcome: TaskOutcome
        if isStopping {
            outcome = .released  // claimed as the shutdown began: give it back untouched
        } else if let handler = handlers[task.kind] {
            do {
                let progress = try await handler.run(task, context: context)
                outcome = progress == .done ? .succeeded : .yielded()
            } catch let failure as PermanentTaskFailure {
                outcome = .dead(error: failure.description)
            } catch is CancellationError {
                outcome = .released
            } catch {
                outcome = .failed(
                    error: String(describing: error), retryAfter: configuration.retry.delay(afterAttempt: task.attempt))
            }
        } else {
            outcome = .dead(error: "no handler for task kind \(task.kind) in this worker")
        }
        if context.leaseLost {
            context.logger.warning("lease lost before the task finished; its acknowledgement will be ignored")
        }
        switch outcome {
        case .failed(let error, let after):
            context.logger.warning("task attempt failed", metadata: [LogKey.error: "\(error)", "retry_in": "\(after)"])
        case .dead(let error):
            context.logger.error("task is dead", metadata: [LogKey.error: "\(error)"])
        default:
            break
        }
        state.withLock { state in
            state.running[task.id] = nil
            state.acks.append(TaskAcknowledgement(id: task.id, attempt: task.attempt, outcome: outcome))
            state.freeSlots.append(context.slotIndex)
            state.tasksRun += 1
        }
        wakeup.signal()
    }

    private func takeAcknowledgements() -> [TaskAcknowledgement] {
        state.withLock { state in
            defer { state.acks.removeAll(keepingCapacity: true) }
            return state.acks
        }
    }

    private func restoreAcknowledgements(_ acks: [TaskAcknowledgement]) {
        guard !acks.isEmpty else { return }
        state.withLock { $0.acks.insert(contentsOf: acks, at: 0) }
    }

    private func flushAcknowledgements(_ control: ConnectionThread) async {
        let acks = takeAcknowledgements()
        guard !acks.isEmpty else { return }
        let (queue, worker) = (self.queue, id)
        do {
            try await control.run { try queue.acknowledge(acks, worker: worker, on: $0) }
        } catch {
            // Keep them: the next flush retries. If the leases run out first, the tasks are
            // rescued and these acknowledgements become no-ops.
            logger.warning("acknowledging \(acks.count) tasks failed; will retry", metadata: [LogKey.error: "\(error)"])
            restoreAcknowledgements(acks)
        }
    }

    // MARK: - Shutdown

    /// Waits up to the grace period for running tasks, acknowledging as they finish; then
    /// cancels what is left, whose handlers release their tasks.
    private func drain(_ control: ConnectionThread, group: inout DiscardingTaskGroup) async {
        let deadline = ContinuousClock.now + configuration.shutdownGrace
        while state.withLock({ !$0.running.isEmpty }), ContinuousClock.now < deadline {
            await flushAcknowledgements(control)
            await wakeup.wait(timeout: .milliseconds(100))
        }
        let left = state.withLock { $0.running.count }
        if left > 0 {
            logger.warning("shutdown grace ran out; releasing \(left) tasks")
            group.cancelAll()
            while state.withLock({ !$0.running.isEmpty }) {
                await wakeup.wait(timeout: .milliseconds(50))
            }
        }
        await flushAcknowledgements(control)
    }

    // MARK: - Heartbeat and LISTEN

    private func heartbeatLoop(_ control: ConnectionThread) async {
        let queue = self.queue
        let (worker, lease) = (id, configuration.lease)
        var lastRescue = ContinuousClock.now
        while !state.withLock({ $0.finished }) {
            do { try await Task.sleep(for: configuration.heartbeatInterval) } catch { return }
            let held = state.withLock { Array($0.running.keys) }
            do {
                let stillHeld = try await control.run {
                    try queue.heartbeat(worker: worker, holding: held, lease: lease, on: $0)
                }
                let lost = state.withLock { state -> [TaskContext] in
                    state.lastHeartbeat = .now
                    return held.filter { !stillHeld.contains($0) }.compactMap { state.running[$0]?.context }
                }
                for context in lost {
                    context.markLeaseLost()
                    context.logger.warning("lease lost: the task was rescued or cancelled")
                }
            } catch {
                logger.warning("heartbeat failed", metadata: [LogKey.error: "\(error)"])
                let contexts = state.withLock { state -> [TaskContext] in
                    ContinuousClock.now - state.lastHeartbeat > lease ? state.running.values.map(\.context) : []
                }
                contexts.forEach { $0.markLeaseLost() }
            }
            if configuration.rescueInterval > .zero, ContinuousClock.now - lastRescue >= configuration.rescueInterval {
                lastRescue = .now
                if let rescued = try? await control.run({ try queue.rescueExpired(on: $0) }), !rescued.isEmpty {
                    logger.notice("rescued \(rescued.count) tasks whose lease expired")
                    wakeup.signal()
                }
            }
        }
    }

    private func listenLoop(_ listener: ConnectionThread) async {
        var listeningOn: Int32 = 0
        let timeout = configuration.pollInterval
        while !state.withLock({ $0.finished }), !Task.isCancelled {
            let known = listeningOn
            do {
                let (pid, woke) = try await listener.run { connection -> (Int32, Bool) in
                    if connection.backendPID != known { try connection.listen(TaskQueue.channel) }
                    let first = try connection.waitForNotification(timeout: timeout)
                    if first != nil { _ = try connection.pendingNotifications() }  // coalesce a burst
                    return (connection.backendPID, first != nil)
                }
                listeningOn = pid
                if woke { wakeup.signal() }
            } catch {
                listeningOn = 0
                logger.warning("LISTEN connection failed; polling meanwhile", metadata: [LogKey.error: "\(error)"])
                try? await Task.sleep(for: timeout)
            }
        }
    }
}
