/// A batch size that follows a target batch duration (issue 17): after a batch that took
/// longer than the target it shrinks in proportion (at most halving), after a full batch
/// that took less it grows by a tenth of the configured size; always within
/// `minimum...maximum`. Short transactions hold locks briefly and let replicas and vacuum
/// keep up; the largest size that stays under the target keeps the throughput.
public struct AdaptiveBatchSize: Sendable, Equatable {
    public let minimum: Int
    public let maximum: Int
    public let target: Duration
    /// The size of the next batch.
    public private(set) var current: Int

    /// Starts at `maximum` (the type's `batch_size`); the floor is a tenth of it, so a type
    /// whose batches are slow whatever their size is never slowed more than tenfold.
    public init(maximum: Int, target: Duration) {
        self.maximum = max(maximum, 1)
        self.minimum = max(self.maximum / 10, 1)
        self.target = target
        self.current = self.maximum
    }

    /// Adjusts after a batch of `rows` roots (of `current` asked for) that took `duration`.
    /// A partial batch (the last of the backlog) says nothing about a larger one: it only
    /// shrinks the size, never grows it.
    public mutating func record(duration: Duration, rows: Int) {
        if duration > target {
            let ratio = max(Throttle.seconds(target) / Throttle.seconds(duration), 0.5)
            current = max(min(Int(Double(current) * ratio), current - 1), minimum)
        } else if rows >= current {
            current = min(current + max(maximum / 10, 1), maximum)
        }
    }
}
