import Foundation
import Postgres
import Retention

/// The queue's operations over `lethe.tasks`, each one statement (see `QueueSQL`).
/// Every function takes the connection to run on: the caller picks the thread.
public struct TaskQueue: Sendable {
    /// The channel workers LISTEN on; enqueue notifies it once per statement.
    public static let channel = QueueSQL.channel

    /// Attempts a task gets unless its enqueuer says otherwise.
    public var defaultMaxAttempts: Int

    public init(defaultMaxAttempts: Int = 20) {
        self.defaultMaxAttempts = defaultMaxAttempts
    }

    /// Enqueues `tasks` in one statement; returns how many were inserted (a task whose
    /// (kind, account, entity type) already has an unfinished task is skipped).
    @discardableResult
    public func enqueue(_ tasks: [NewTask], on connection: Connection) throws -> Int {
        guard !tasks.isEmpty else { return 0 }
        let row = try connection.query(
            QueueSQL.enqueue,
            [
                tasks.map(\.kind.rawValue), tasks.map(\.accountID), tasks.map(\.entityType), tasks.map(\.payload),
                tasks.map { Int64($0.priority) }, tasks.map(\.runAt), tasks.map { $0.maxAttempts.map(Int64.init) },
                defaultMaxAttempts,
            ])[0]
        return try row.decode(Int.self, at: 0)
    }

    /// Claims up to `limit` due tasks for `worker` under a lease of `lease`, in claim order,
    /// after recording `acknowledgements` in the same statement (one round trip and one
    /// commit per worker cycle). `kinds` restricts the claim to the kinds the worker can
    /// run (nil: any).
    public func claim(
        limit: Int, worker: UUID, lease: Duration, kinds: [String]? = nil,
        acknowledging acknowledgements: [TaskAcknowledgement] = [], on connection: Connection
    ) throws -> [ClaimedTask] {
        var parameters: [any PostgresEncodable]
        let shape: QueueSQL.Acknowledging
        if acknowledgements.isEmpty {
            shape = .none
            parameters = [limit, worker, lease.milliseconds]
        } else if acknowledgements.allSatisfy({ $0.outcome == .succeeded }) {
            shape = .successes
            parameters = [acknowledgements.map(\.id), acknowledgements.map(\.claim), worker, limit, lease.milliseconds]
        } else {
            shape = .outcomes
            parameters = Self.acknowledgementParameters(acknowledgements, worker: worker) + [limit, lease.milliseconds]
        }
        if let kinds { parameters.append(kinds) }
        let sql = QueueSQL.claim(kinds: kinds != nil, acknowledging: shape)
        return try connection.query(sql, parameters).map { row in
            let (id, kind, account, entity, attempt, maxAttempts, yields, payload, claim) = try row.decode(
                (Int64, String, String?, String?, Int, Int, Int, String, Int64).self)
            return ClaimedTask(
                id: id, kind: TaskKind(kind), accountID: account, entityType: entity, attempt: attempt,
                maxAttempts: maxAttempts, yields: yields, payload: payload, claim: claim)
        }
    }

    /// Extends the leases of the tasks `worker` holds and its registry heartbeat; returns
    /// what it still holds (a missing hold was rescued or cancelled: stop touching it).
    public func heartbeat(
        worker: UUID, holding holds: [TaskHold], lease: Duration, on connection: Connection
    ) throws
        -> Set<TaskHold>
    {
        let result = try connection.query(
            QueueSQL.heartbeat, [worker, lease.milliseconds, holds.map(\.id), holds.map(\.claim)])
        return Set(try result.map { TaskHold(id: try $0.decode(at: 0), claim: try $0.decode(at: 1)) })
    }

    /// Records how `worker` finished the attempts it held, in one statement; returns how
    /// many applied (an acknowledgement for an attempt no longer held changes nothing).
    @discardableResult
    public func acknowledge(_ acks: [TaskAcknowledgement], worker: UUID, on connection: Connection) throws -> Int {
        guard !acks.isEmpty else { return 0 }
        return try connection.execute(QueueSQL.acknowledge, Self.acknowledgementParameters(acks, worker: worker))
    }

    /// $1–$6 of `QueueSQL.acknowledge`.
    static func acknowledgementParameters(_ acks: [TaskAcknowledgement], worker: UUID) -> [any PostgresEncodable] {
        var outcomes: [String] = []
        var delays: [Int64] = []
        var errors: [String?] = []
        for ack in acks {
            let (outcome, delay, error): (String, Duration, String?) =
                switch ack.outcome {
                case .succeeded: ("succeeded", .zero, nil)
                case .yielded(let after): ("yielded", after, nil)
                case .failed(let error, let retryAfter): ("failed", retryAfter, error)
                case .dead(let error): ("dead", .zero, error)
                case .released: ("released", .zero, nil)
                }
            outcomes.append(outcome)
            delays.append(delay.milliseconds)
            // PostgreSQL text cannot hold NUL; one in an error message must not block the queue.
            errors.append(error.map { $0.replacingOccurrences(of: "\u{0}", with: "") })
        }
        return [acks.map(\.id), acks.map(\.claim), outcomes, delays, errors, worker]
    }

    /// Fails the running tasks whose lease ran out (their worker died or lost the
    /// database): they are due again at once, or dead when out of attempts. Returns their ids.
    @discardableResult
    public func rescueExpired(batch: Int = 10_000, on connection: Connection) throws -> [Int64] {
        try connection.query(QueueSQL.rescue, [batch]).map { try $0.decode(Int64.self, at: 0) }
    }

    /// Deletes finished tasks older than their retention in batches of `batch`, and
    /// processes long stopped or lost; returns the number of tasks deleted.
    @discardableResult
    public func prune(
        keepFinished: Duration, keepDead: Duration, batch: Int = 10_000, on connection: Connection
    )
        throws -> Int
    {
        var total = 0
        let batch = max(batch, 1)
        while true {
            let deleted = try connection.execute(
                QueueSQL.prune, [keepFinished.milliseconds, keepDead.milliseconds, batch])
            total += deleted
            if deleted < batch { break }
        }
        try connection.execute(QueueSQL.pruneWorkers, [keepDead.milliseconds])
        return total
    }

    /// True when nothing is due, running or waiting for a retry, and no schedule is due;
    /// with `kinds`, only tasks of those kinds count.
    public func isIdle(kinds: [String]? = nil, on connection: Connection) throws -> Bool {
        try connection.query(QueueSQL.isIdle, [kinds])[0].decode(Bool.self, at: 0)
    }

    /// Enqueues the tasks of due schedules and advances them; returns (due, enqueued).
    @discardableResult
    public func enqueueDueSchedules(batch: Int = 10_000, on connection: Connection) throws -> (due: Int, enqueued: Int)
    {
        let row = try connection.query(QueueSQL.enqueueDueSchedules, [batch])[0]
        let (due, enqueued) = try row.decode((Int, Int).self)
        return (due, enqueued)
    }
}
