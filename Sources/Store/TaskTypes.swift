import Foundation
import Retention

/// A task to put on the queue.
public struct NewTask: Sendable, Equatable {
    public var kind: TaskKind
    public var accountID: String?
    public var entityType: String?
    /// JSON object text.
    public var payload: String
    /// Lower runs first.
    public var priority: Int
    /// Not before this time; nil for now.
    public var runAt: Date?
    /// nil for the queue's default.
    public var maxAttempts: Int?

    public init(
        kind: TaskKind, accountID: String? = nil, entityType: String? = nil, payload: String = "{}", priority: Int = 0,
        runAt: Date? = nil, maxAttempts: Int? = nil
    ) {
        self.kind = kind
        self.accountID = accountID
        self.entityType = entityType
        self.payload = payload
        self.priority = priority
        self.runAt = runAt
        self.maxAttempts = maxAttempts
    }
}

/// A task a worker holds under a lease.
public struct ClaimedTask: Sendable, Equatable {
    public var id: Int64
    public var kind: TaskKind
    public var accountID: String?
    public var entityType: String?
    /// 1 for the first attempt; the lease and every acknowledgement are tied to it.
    public var attempt: Int
    public var maxAttempts: Int
    /// Budget slices this task has used before this one.
    public var yields: Int
    /// JSON object text.
    public var payload: String
    /// The task's claim counter at this claim: it only grows, so it fences every
    /// acknowledgement and heartbeat to this claim (attempts can go back down on a yield).
    public var claim: Int64

    /// What this worker holds: the task at this claim.
    public var hold: TaskHold { TaskHold(id: id, claim: claim) }
}

/// A task at one claim, as a worker holds it.
public struct TaskHold: Sendable, Hashable {
    public var id: Int64
    public var claim: Int64
    public init(id: Int64, claim: Int64) {
        self.id = id
        self.claim = claim
    }
}

/// How a worker finished with a task it held.
public enum TaskOutcome: Sendable, Equatable {
    /// Done: the task succeeded.
    case succeeded
    /// Out of budget with work left: back to the queue, behind the tasks already due.
    case yielded(after: Duration = .zero)
    /// This attempt failed: retry after `retryAfter`, or dead when out of attempts.
    case failed(error: String, retryAfter: Duration)
    /// Failed in a way retrying cannot fix: dead now.
    case dead(error: String)
    /// Not run (the worker is shutting down): back to the queue as if never claimed.
    case released
}

/// One acknowledgement, tied to the claim the worker held.
public struct TaskAcknowledgement: Sendable, Equatable {
    public var id: Int64
    public var claim: Int64
    public var outcome: TaskOutcome
    public init(id: Int64, claim: Int64, outcome: TaskOutcome) {
        self.id = id
        self.claim = claim
        self.outcome = outcome
    }
    public init(_ hold: TaskHold, outcome: TaskOutcome) {
        self.init(id: hold.id, claim: hold.claim, outcome: outcome)
    }
}

extension TaskAcknowledgement {
    /// True when the acknowledgement makes the task due again at once.
    public var requeuesNow: Bool {
        switch outcome {
        case .yielded(let after): return after <= .zero
        case .released: return true
        case .failed(_, let retryAfter): return retryAfter <= .zero
        case .succeeded, .dead: return false
        }
    }
}

/// A row of `lethe.tasks`, for listings.
public struct TaskRecord: Sendable, Equatable, Codable {
    public var id: Int64
    public var kind: String
    public var accountID: String?
    public var entityType: String?
    public var state: TaskState
    public var priority: Int
    public var runAt: Date
    public var attempts: Int
    public var maxAttempts: Int
    public var yields: Int
    public var workerID: UUID?
    public var lastError: String?
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
}
