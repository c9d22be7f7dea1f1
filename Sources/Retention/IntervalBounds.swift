/// The intervals an entity type allows: a default for new accounts, and the shortest and
/// longest an account may choose.
public struct IntervalBounds: Sendable, Hashable {
    public var defaultInterval: RetentionInterval
    public var minimum: RetentionInterval
    public var maximum: RetentionInterval

    /// Why a set of bounds is inconsistent.
    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    public init(
        default defaultInterval: RetentionInterval, minimum: RetentionInterval, maximum: RetentionInterval
    )
        throws(Invalid)
    {
        guard minimum <= maximum else {
            throw Invalid(description: "min \(minimum) is longer than max \(maximum)")
        }
        guard minimum <= defaultInterval, defaultInterval <= maximum else {
            throw Invalid(description: "default \(defaultInterval) is outside min \(minimum) … max \(maximum)")
        }
        self.defaultInterval = defaultInterval
        self.minimum = minimum
        self.maximum = maximum
    }

    /// What happens to an interval an account asks for.
    public enum Decision: Sendable, Equatable {
        /// Within bounds: kept as asked.
        case accepted(RetentionInterval)
        /// Below the minimum: raised to it (and the caller is told).
        case raisedToMinimum(asked: RetentionInterval, minimum: RetentionInterval)
        /// Above the maximum: refused.
        case rejectedAboveMaximum(asked: RetentionInterval, maximum: RetentionInterval)

        /// The interval that takes effect, or nil when refused.
        public var effective: RetentionInterval? {
            switch self {
            case .accepted(let interval): interval
            case .raisedToMinimum(_, let minimum): minimum
            case .rejectedAboveMaximum: nil
            }
        }
    }

    /// Applies the bounds to `asked`: above the maximum is refused; below the minimum is
    /// raised to it.
    public func decide(_ asked: RetentionInterval) -> Decision {
        if asked > maximum { return .rejectedAboveMaximum(asked: asked, maximum: maximum) }
        if asked < minimum { return .raisedToMinimum(asked: asked, minimum: minimum) }
        return .accepted(asked)
    }
}
