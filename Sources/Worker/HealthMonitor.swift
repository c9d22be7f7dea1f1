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
    /// Root rows per second the whole process may still delete while throttled
    /// (`throttle.floor_rate`); 0 pauses batches until the pressure goes.
    public var floorRate = 0

    public init() {}
}

/// A worker process's cached view of the database's health: sampled at most every
/// `checkInterval` per entity type (the lock waits are per type; the rest is shared), on the
/// caller's connection thread. It sets `lethe_throttled` and logs when the reasons to pause
/// change; `reasons` says what they are now, and `publication()` what to record in
/// `lethe.workers`. While throttled with a floor, `reserveFloor` paces every slot of the
/// process together. Shared by every slot and registry reload.
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
        /// When the current throttle began, and the sentence of its last sample.
        var since: ContinuousClock.Instant?
        var detail = ""
        /// Bumped on every change of what `publication()` returns; `published` is the last recorded.
        var generation = 0
        var published = 0
        /// The floor's virtual clock: when the next reserved batch may start.
        var nextFloorStart: ContinuousClock.Instant?
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
            let detail = active.isEmpty ? "" : Self.detail(causes)
            let change = active == state.active ? nil : active
            if active != state.active || detail != state.detail { state.generation += 1 }
            if active.isEmpty {
                state.since = nil
            } else if state.since == nil {
                state.since = now
            }
            (state.active, state.detail) = (active, detail)
            return (causes, change)
        }
        if let change { announce(change, causes: causes) }
        return causes
    }

    static func detail(_ causes: [ThrottleCause]) -> String {
        causes.isEmpty
            ? "lock waits on another entity type's tables" : causes.map(\.description).joined(separator: "; ")
    }

    private func announce(_ reasons: [ThrottleReason], causes: [ThrottleCause]) {
        for reason in ThrottleReason.allCases {
            LetheMetric.throttled.set(reasons.contains(reason) ? 1 : 0, reason.rawValue)
        }
        if reasons.isEmpty {
            logger.notice("retention throttle lifted: the database health signals are within their limits")
        } else {
            let floor = settings.floorRate
            logger.notice(
                floor > 0
                    ? "retention throttled: batches slow to throttle.floor_rate \(floor) roots/s until the database recovers"
                    : "retention throttled: batches pause until the database recovers",
                metadata: [
                    "reasons": "\(reasons.map(\.rawValue).joined(separator: ","))",
                    "why": "\(Self.detail(causes))",
                ])
        }
    }

    // MARK: - The floor

    /// While throttled with `floorRate` > 0: the size of the next batch (at most a second of
    /// the floor) and when it may start, so that all slots of the process together delete at
    /// most `floorRate` roots per second (plus one batch). Each call reserves its rows.
    public func reserveFloor(upTo limit: Int) -> (rows: Int, start: ContinuousClock.Instant) {
        let rate = max(settings.floorRate, 1)
        let rows = max(min(limit, rate), 1)
        return state.withLock { state in
            let now = ContinuousClock.now
            let start = max(now, state.nextFloorStart ?? now)
            state.nextFloorStart = start + .seconds(Double(rows) / Double(rate))
            return (rows, start)
        }
    }

    // MARK: - What lethe.workers shows

    /// The throttle state to record in `lethe.workers` when it changed since the last
    /// `published(_:)`, else nil. A throttle no batch has checked for three check intervals
    /// (at least 30 s) is over: no batch waits for it any more.
    public func publication() -> ThrottlePublication? {
        let now = ContinuousClock.now
        let stale = max(settings.checkInterval * 3, .seconds(30))
        let (publication, expired) = state.withLock { state -> (ThrottlePublication?, Bool) in
            var expired = false
            if !state.active.isEmpty, let newest = state.entries.values.map(\.at).max(), now - newest > stale {
                (state.active, state.detail, state.since) = ([], "", nil)
                state.generation += 1
                expired = true
            }
            guard state.generation != state.published else { return (nil, expired) }
            return (
                ThrottlePublication(
                    reasons: state.active.map(\.rawValue), throttledFor: state.since.map { now - $0 },
                    detail: state.detail, generation: state.generation),
                expired
            )
        }
        if expired {
            for reason in ThrottleReason.allCases { LetheMetric.throttled.set(0, reason.rawValue) }
            logger.info("retention throttle over: no retention batch has checked the database's health lately")
        }
        return publication
    }

    /// Marks `publication` recorded.
    public func published(_ publication: ThrottlePublication) {
        state.withLock { $0.published = max($0.published, publication.generation) }
    }
}

/// A worker process's throttle state as `lethe.workers` records it.
public struct ThrottlePublication: Sendable, Equatable {
    /// `ThrottleReason` raw values; empty when not throttled.
    public var reasons: [String]
    /// How long the throttle has lasted; nil when not throttled.
    public var throttledFor: Duration?
    /// Why, in words (the last sample's causes); empty when not throttled.
    public var detail: String
    var generation: Int
}

/// The adaptive batch sizes of a worker process, per (account, entity type), in memory.
public final class BatchSizer: Sendable {
    private struct Key: Hashable {
        var account: String
        var type: String
    }
    /// The batch duration held; nil: every batch is the type's `batch_size`.
    public let target: Duration?
    private struct Sizes {
        var pairs: [Key: AdaptiveBatchSize] = [:]
        /// Per entity type, the size this process learned last (for any account): where a
        /// pair seen for the first time starts, so a new tenant does not relearn from the floor.
        var learned: [String: Int] = [:]
    }
    private let sizes = Mutex(Sizes())
    /// More pairs than this and the sizes start over (each relearns within a few batches).
    static let capacity = 100_000

    public init(target: Duration?) { self.target = target }

    /// The size of the next batch of `type` for `account`.
    public func size(account: String, type: EntityType) -> Int {
        guard let target else { return type.batchSize }
        return sizes.withLock { sizes in
            let key = Key(account: account, type: type.name)
            if let size = sizes.pairs[key], size.maximum == max(type.batchSize, 1) { return size.current }
            if sizes.pairs.count >= Self.capacity { sizes.pairs.removeAll() }
            let size = AdaptiveBatchSize(maximum: type.batchSize, target: target, start: sizes.learned[type.name])
            sizes.pairs[key] = size
            return size.current
        }
    }

    /// Records a batch of `rows` roots that took `duration`.
    public func record(account: String, type: EntityType, rows: Int, duration: Duration) {
        guard target != nil else { return }
        sizes.withLock { sizes in
            let key = Key(account: account, type: type.name)
            guard var size = sizes.pairs[key] else { return }
            size.record(duration: duration, rows: rows)
            sizes.pairs[key] = size
            sizes.learned[type.name] = size.current
        }
    }
}
