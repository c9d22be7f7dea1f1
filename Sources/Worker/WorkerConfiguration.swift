import Retention

/// How a worker process claims and runs tasks. Defaults let a dead worker's tasks run
/// elsewhere within 30 s: a 15 s lease, extended every 5 s, rescued within 5 s of expiry.
public struct WorkerConfiguration: Sendable {
    /// Tasks run at once (slots).
    public var concurrency = 8
    /// Most tasks claimed in one statement.
    public var claimBatch = 100
    /// Claim loops, each on its own connection, sharing the slots: while one waits for the
    /// database, another dispatches what it claimed. One per process scales best when
    /// several worker processes run; two lift a lone process (see BENCHMARKS.md).
    public var claimLoops = 1
    /// How long a claimed task stays ours without a heartbeat.
    public var lease: Duration = .seconds(15)
    /// How often the heartbeat extends the leases (well under `lease`).
    public var heartbeatInterval: Duration = .seconds(5)
    /// How often this worker also rescues expired leases (0 disables it).
    public var rescueInterval: Duration = .seconds(5)
    /// How long to sleep when nothing is due, between NOTIFY wake-ups.
    public var pollInterval: Duration = .seconds(1)
    /// LISTEN for enqueue notifications; off for PgBouncer transaction pooling (poll only).
    public var listen = true
    /// One budget slice of a task: after it, handlers yield and the task goes to the back.
    public var taskBudget: Duration = .seconds(10)
    /// On SIGTERM: how long tasks in hand may take to finish before they are released.
    public var shutdownGrace: Duration = .seconds(30)
    /// Backoff between failed attempts.
    public var retry = RetryPolicy()
    /// Exit once nothing is due, available or running (`--until-idle`).
    public var untilIdle = false

    public init() {}
}
