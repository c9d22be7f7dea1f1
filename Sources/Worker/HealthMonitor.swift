import LetheMetrics
import Logging
import Postgres
import Retention
import Store
import Synchronization

/// How workers throttle retention (`throttle.*`, `retention.target_batch_duration`).
public struct ThrottleSettings: Sendable {
    /// The limits; `ThrottleLimits.none` turns throttling off.
    public var limits = ThrottleLimits()
    /// How old a sample may get before a batch reads a new one (`throttle.check_interval`).
    public var checkInterval: Duration = .seconds(5)
    /// The lag source (`throttle.replication_lag_query`).
    public var lagQuery = DatabaseHealth.standardLagQuery
    /// The batch duration the adaptive batch size holds; nil keeps every type's `batch_size`.
    public var targetBatchDuration: Duration? = .milliseconds(150)

    public init() {}
}

/// A worker process's cached view of the database's health: sampled at most every
/// `checkInterval` per entity type (the lock waits are per type; the rest is shared), on the
/// caller's connection thread. It sets `lethe_throttled` and logs when the reasons to pause
/// change; `reasons` says what they are now. Shared by every slot and registry reload.
public final class HealthMonitor: Sendable {
    public let settings: ThrottleSettings
    private let logger: Logger
    private struct Entry {
        var causes: [ThrottleCause]
        var at: ContinuousClock.Instant
    }
    private struct State {
        var entries: [String: Entry] = [:]
        var lastWAL: (position: Double, at: ContinuousClock.Instant)?
        var walRate: Double?
        var active: [ThrottleReason] = []
    }
    private let state = Mutex(State())

    public init(settings: ThrottleSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// The reasons this process pauses for now (as of the last samples), in order.
    public var reasons: [ThrottleReason] { state.withLock { $0.active } }

    /// Why a batch of `type` should wait now (empty: run it). Samples the database when the
    /// type's last sample is older than `checkInterval`. Blocking: call it on a connection thread.
    public func causes(for type: CompiledEntityType, on connection: Connection) throws -> [ThrottleCause] {
        if settings.limits == .none { return [] }
        let now = ContinuousClock.now
        if let entry = state.withLock({ $0.entries[type.name] }), now - entry.at < settings.checkInterval {
            return entry.causes
        }
        let sample = try DatabaseHealth.sample(lagQuery: settings.lagQuery, type: type, on: connection)
        let (causes, change) = state.withLock { state in
            // The WAL rate needs two samples a second or more apart.
            if let last = state.lastWAL, now - last.at >= .seconds(1) {
                state.walRate = max(sample.walPosition - last.position, 0) / Throttle.seconds(now - last.at)
                state.lastWAL = (sample.walPosition, now)
            } else if state.lastWAL == nil {
                state.lastWAL = (sample.walPosition, now)
            }
            let signals = HealthSignals(
                replicationLag: sample.replicationLag, walBytesPerSecond: state.walRate,
                oldestTransactionAge: sample.oldestTransactionAge, lockWaits: sample.lockWaits)
            let causes = Throttle.causes(signals, limits: settings.limits)
            state.entries[type.name] = Entry(causes: causes, at: now)
            // This process's reasons: this sample's, and lock waits on another type's tables
            // sampled lately.
            var reasons = Set(causes.map(\.reason))
            let recent = state.entries.values.filter { now - $0.at < settings.checkInterval * 2 }
            if recent.contains(where: { $0.causes.contains { $0.reason == .lockWaits } }) {
                reasons.insert(.lockWaits)
            }
            let active = reasons.sorted()
            defer { state.active = active }
            return (causes, active == state.active ? nil : active)
        }
        if let change { announce(change, causes: causes) }
        return causes
    }

    private func announce(_ reasons: [ThrottleReason], causes: [ThrottleCause]) {
        for reason in ThrottleReason.allCases {
            LetheMetric.throttled.set(reasons.contains(reason) ? 1 : 0, reason.rawValue)
        }
        if reasons.isEmpty {
            logger.notice("retention throttle lifted: the database health signals are within their limits")
        } else {
            let why = causes.map(\.description).joined(separator: "; ")
            logger.notice(
                "retention throttled: batches pause until the database recovers",
                metadata: [
                    "reasons": "\(reasons.map(\.rawValue).joined(separator: ","))",
                    "why": "\(why.isEmpty ? "lock waits on another entity type's tables" : why)",
                ])
        }
    }
}

/// The adaptive batch sizes of a worker process, per (account, entity type), in memory.
public final class BatchSizer: Sendable {
    private struct Key: Hashable {
        var account: String
        var type: String
    }
    /// The batch duration held; nil: every batch is the type's `batch_size`.
    public let target: Duration?
    private let sizes = Mutex<[Key: AdaptiveBatchSize]>([:])
    /// More pairs than this and the sizes start over (each relearns within a few batches).
    static let capacity = 100_000

    public init(target: Duration?) { self.target = target }

    /// The size of the next batch of `type` for `account`.
    public func size(account: String, type: EntityType) -> Int {
        guard let target else { return type.batchSize }
        return sizes.withLock { sizes in
            let key = Key(account: account, type: type.name)
            if let size = sizes[key], size.maximum == max(type.batchSize, 1) { return size.current }
            if sizes.count >= Self.capacity { sizes.removeAll() }
            let size = AdaptiveBatchSize(maximum: type.batchSize, target: target)
            sizes[key] = size
            return size.current
        }
    }

    /// Records a batch of `rows` roots that took `duration`.
    public func record(account: String, type: EntityType, rows: Int, duration: Duration) {
        guard target != nil else { return }
        sizes.withLock { $0[Key(account: account, type: type.name)]?.record(duration: duration, rows: rows) }
    }
}
