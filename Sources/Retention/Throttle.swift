/// The database health signals workers read before each retention batch (issue 17), as one
/// sample measured them. A signal the sample could not measure is nil and never throttles.
public struct HealthSignals: Sendable, Equatable {
    /// Replay lag of the slowest replica in seconds; nil without replicas.
    public var replicationLag: Double?
    /// WAL generated per second since the previous sample; nil on the first sample.
    public var walBytesPerSecond: Double?
    /// Age in seconds of the oldest transaction holding back vacuum in this database (not
    /// idle, not Lethe's own); nil when there is none.
    public var oldestTransactionAge: Double?
    /// Ungranted locks on the tables of the entity type being deleted.
    public var lockWaits: Int

    public init(
        replicationLag: Double? = nil, walBytesPerSecond: Double? = nil, oldestTransactionAge: Double? = nil,
        lockWaits: Int = 0
    ) {
        self.replicationLag = replicationLag
        self.walBytesPerSecond = walBytesPerSecond
        self.oldestTransactionAge = oldestTransactionAge
        self.lockWaits = lockWaits
    }
}

/// Why a worker pauses between batches: the `reason` label of `lethe_throttled`.
public enum ThrottleReason: String, Sendable, CaseIterable, Comparable {
    case replicationLag = "replication_lag"
    case walRate = "wal_rate"
    case transactionAge = "transaction_age"
    case lockWaits = "lock_waits"

    public static func < (lhs: Self, rhs: Self) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// The limits over which workers pause (`throttle.*`); nil turns a signal off.
public struct ThrottleLimits: Sendable, Equatable {
    /// `throttle.max_replication_lag`: 30 s by default (a replica further behind serves
    /// stale reads, and more deletions only widen the gap).
    public var replicationLag: Duration? = .seconds(30)
    /// `throttle.max_wal_rate` in bytes per second: off by default (what a deployment's
    /// archiving and replicas sustain is its own).
    public var walBytesPerSecond: Int64?
    /// `throttle.max_transaction_age`: 10 minutes by default (a transaction that old keeps
    /// vacuum from reclaiming what retention deletes: the tables only bloat).
    public var transactionAge: Duration? = .seconds(600)
    /// `throttle.max_lock_waits`: pause when more than this many lock requests wait on the
    /// type's tables; 0 by default (anyone waiting goes first).
    public var lockWaits: Int? = 0

    public init() {}

    /// Off: no signal throttles.
    public static let none: ThrottleLimits = {
        var limits = ThrottleLimits()
        limits.replicationLag = nil
        limits.transactionAge = nil
        limits.lockWaits = nil
        return limits
    }()
}

/// One signal over its limit, and the sentence saying so.
public struct ThrottleCause: Sendable, Equatable {
    public var reason: ThrottleReason
    public var description: String
}

/// The pure decision: which signals of a sample are over their limits.
public enum Throttle {
    /// The causes to pause for, in `ThrottleReason` order; empty when the batch may run.
    public static func causes(_ signals: HealthSignals, limits: ThrottleLimits) -> [ThrottleCause] {
        var causes: [ThrottleCause] = []
        if let limit = limits.replicationLag, let lag = signals.replicationLag, lag > seconds(limit) {
            causes.append(
                ThrottleCause(
                    reason: .replicationLag,
                    description: "replication lag \(format(lag)) s is over throttle.max_replication_lag "
                        + "\(format(seconds(limit))) s"))
        }
        if let limit = limits.walBytesPerSecond, let rate = signals.walBytesPerSecond, rate > Double(limit) {
            causes.append(
                ThrottleCause(
                    reason: .walRate,
                    description: "WAL rate \(format(rate.rounded(.down))) bytes/s is over throttle.max_wal_rate "
                        + "\(limit) bytes/s"))
        }
        if let limit = limits.transactionAge, let age = signals.oldestTransactionAge, age > seconds(limit) {
            causes.append(
                ThrottleCause(
                    reason: .transactionAge,
                    description: "the oldest transaction has run \(format(age)) s, over "
                        + "throttle.max_transaction_age \(format(seconds(limit))) s"))
        }
        if let limit = limits.lockWaits, signals.lockWaits > limit {
            causes.append(
                ThrottleCause(
                    reason: .lockWaits,
                    description: "\(signals.lockWaits) lock requests wait on the entity type's tables "
                        + "(throttle.max_lock_waits \(limit))"))
        }
        return causes
    }

    public static func seconds(_ duration: Duration) -> Double {
        let (whole, fraction) = duration.components
        return Double(whole) + Double(fraction) / 1e18
    }

    /// Whole numbers without a fraction, others to one decimal. Never traps: a lag query may
    /// return 'Infinity' or a huge sentinel, which `Int64(_:)` cannot hold.
    static func format(_ value: Double) -> String {
        guard value.isFinite, value.magnitude < 1e15 else { return "\(value)" }
        return value.rounded() == value ? String(Int64(value)) : String((value * 10).rounded() / 10)
    }
}
