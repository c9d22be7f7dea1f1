/// How a coordinator leads: how often it ticks, rescues and prunes, and how long finished
/// tasks are kept.
public struct CoordinatorConfiguration: Sendable {
    /// Scheduler tick and leadership check. A standby takes over within about one tick of
    /// the leader's death.
    public var tickInterval: Duration = .seconds(1)
    /// How often the leader fails running tasks whose lease ran out.
    public var rescueInterval: Duration = .seconds(5)
    /// How often the leader deletes old finished tasks.
    public var pruneInterval: Duration = .seconds(60)
    /// How long succeeded and cancelled tasks are kept.
    public var keepFinished: Duration = .seconds(24 * 3600)
    /// How long dead tasks are kept (they need an operator's look).
    public var keepDead: Duration = .seconds(7 * 24 * 3600)
    /// Rows per prune statement.
    public var pruneBatch = 10_000
    /// Silence after which `lethe.worker_status` calls this process lost.
    public var lease: Duration = .seconds(15)
    /// Exit once nothing is due, available or running (`--until-idle`).
    public var untilIdle = false

    public init() {}
}
