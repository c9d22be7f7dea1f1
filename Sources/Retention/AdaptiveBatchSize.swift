/// A batch size that keeps batches under a target duration (issue 17). It aims at two thirds
/// of the target: after a batch over the target it shrinks in proportion to land there (at
/// most halving); after a full batch under two thirds it grows toward it (at most by a
/// fifth); in between it stays. Always within `minimum...maximum`. Short transactions hold
/// locks briefly and let replicas and vacuum keep up; the largest size that stays under the
/// target keeps the throughput.
///
/// Why two thirds and a fifth: batch times vary by ±15% or more from one batch to the next
/// on a busy server. Aiming at the target itself (and growing by a tenth of `batch_size`, as
/// this type first did) put half the batches over it, p99 at twice the target in
/// `lethe bench retention`; the headroom keeps ordinary noise under the target.
public struct AdaptiveBatchSize: Sendable, Equatable {
    public let minimum: Int
    public let maximum: Int
    public let target: Duration
    /// The size of the next batch.
    public private(set) var current: Int

    /// The floor is a tenth of `maximum` (the type's `batch_size`), so a type whose batches
    /// are slow whatever their size is never slowed more than tenfold. Starts at `start`
    /// (within the bounds), else at the floor: a first batch of `batch_size` roots on a large
    /// table is the slowest batch of the run (BENCHMARKS.md, adaptive batches), while growing
    /// from the floor by a fifth reaches `batch_size` in 13 batches.
    public init(maximum: Int, target: Duration, start: Int? = nil) {
        self.maximum = max(maximum, 1)
        self.minimum = max(self.maximum / 10, 1)
        self.target = target
        self.current = min(max(start ?? self.minimum, self.minimum), self.maximum)
    }

    /// Adjusts after a batch of `rows` roots (of `current` asked for) that took `duration`.
    /// A partial batch (the last of the backlog) says nothing about a larger one: it only
    /// shrinks the size, never grows it.
    public mutating func record(duration: Duration, rows: Int) {
        let ratio = Throttle.seconds(aim) / max(Throttle.seconds(duration), 0.000_001)
        if duration > target {
            current = max(min(Int(Double(current) * max(ratio, 0.5)), current - 1), minimum)
        } else if duration < aim, rows >= current {
            current = min(max(Int(Double(current) * min(ratio, 1.2)), current + 1), maximum)
        }
    }

    /// The batch duration aimed at: two thirds of the target.
    public var aim: Duration { target * 2 / 3 }
}
