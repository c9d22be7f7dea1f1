import Foundation
import LetheMetrics
import Logging
import Postgres
import Retention
import Store
import Synchronization

/// Runs one kind of task. Handlers are stateless and shared by every slot of a worker.
public protocol TaskHandler: Sendable {
    /// The `lethe.tasks.kind` this handler runs.
    var kind: TaskKind { get }

    /// Does a bounded piece of the task's work. Return `.done` when nothing is left, or
    /// `.more` when the budget ran out (`context.shouldYield`) with work left: the task goes
    /// to the back of the queue and continues later. Throw to fail the attempt (retried with
    /// backoff); throw `PermanentTaskFailure` when retrying cannot help.
    func run(_ task: ClaimedTask, context: TaskContext) async throws -> TaskProgress
}

/// What a handler reports after a budget slice.
public enum TaskProgress: Sendable, Equatable {
    case done
    case more
}

/// A failure that retrying cannot fix (a malformed payload, an unknown entity type): the
/// task goes straight to `dead`.
public struct PermanentTaskFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// What a handler may use while it runs one task: its slot's database thread, a logger
/// with the task's metadata, and the signals to stop early.
public final class TaskContext: Sendable {
    /// The worker process's id (the task's `worker_id`).
    public let workerID: UUID
    /// When the task's budget slice ends.
    public let deadline: ContinuousClock.Instant
    private let task: ClaimedTask
    private let workerLogger: Logger
    /// The worker slot this task occupies.
    let slot: Int
    private let slots: SlotDatabases
    private let flags = Mutex<(leaseLost: Bool, stopping: Bool)>((false, false))
    private let tally = Mutex(TaskCounts())

    init(
        task: ClaimedTask, logger: Logger, workerID: UUID, deadline: ContinuousClock.Instant, slot: Int,
        slots: SlotDatabases
    ) {
        self.task = task
        self.workerLogger = logger
        self.workerID = workerID
        self.deadline = deadline
        self.slot = slot
        self.slots = slots
    }

    /// A logger carrying the task's id, kind, attempt, account and entity type. Built on
    /// use: most tasks never log, and the metadata would cost more than a no-op task.
    public var logger: Logger {
        var logger = workerLogger
        logger[metadataKey: LogKey.task] = "\(task.id)"
        logger[metadataKey: LogKey.taskKind] = "\(task.kind)"
        logger[metadataKey: LogKey.attempt] = "\(task.attempt)"
        if let account = task.accountID { logger[metadataKey: LogKey.account] = "\(account)" }
        if let type = task.entityType { logger[metadataKey: LogKey.entityType] = "\(type)" }
        return logger
    }

    /// The slot's own database connection thread (opened on first use).
    public var database: ConnectionThread { slots.thread(forSlot: slot) }

    /// True once another worker may own the task (the lease was lost): stop touching it.
    public var leaseLost: Bool { flags.withLock { $0.leaseLost } }

    /// True when the handler should stop at the next safe point: the budget is spent, the
    /// lease was lost, or the worker is shutting down.
    public var shouldYield: Bool {
        let (lost, stopping) = flags.withLock { ($0.leaseLost, $0.stopping) }
        return lost || stopping || ContinuousClock.now >= deadline
    }

    /// What the task did so far: the worker's line for the finished task reports it.
    public var counts: TaskCounts { tally.withLock { $0 } }

    /// Counts rows deleted for `entityType` (an entity type or blob store): the task's line
    /// and `lethe_rows_deleted_total`.
    public func recordDeleted(rows: Int, entityType: String) {
        guard rows > 0 else { return }
        tally.withLock { $0.rowsDeleted += rows }
        LetheMetric.rowsDeleted.increment(by: rows, entityType)
    }

    /// Counts bytes of archive files packed: the task's line and `lethe_archived_bytes_total`.
    public func recordArchived(bytes: Int64) {
        guard bytes > 0 else { return }
        tally.withLock { $0.bytesArchived += bytes }
        LetheMetric.archivedBytes.increment(by: Int(bytes))
    }

    /// Counts one file upload to a site of `siteKind` (`sftp`, `file`).
    public func recordUpload(siteKind: String, succeeded: Bool) {
        tally.withLock { succeeded ? ($0.uploads += 1) : ($0.failedUploads += 1) }
        LetheMetric.uploads.increment(siteKind, succeeded ? "success" : "failure")
    }

    func markLeaseLost() { flags.withLock { $0.leaseLost = true } }
    func markStopping() { flags.withLock { $0.stopping = true } }
}

/// What one task slice did, for the worker's line about the finished task.
public struct TaskCounts: Sendable, Equatable {
    public var rowsDeleted = 0
    public var bytesArchived: Int64 = 0
    public var uploads = 0
    public var failedUploads = 0
}
