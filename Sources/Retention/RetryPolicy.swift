/// Exponential backoff with jitter, capped at `maximum`: between failed task attempts (the
/// queue) and between attempts of a backup-site operation (BackupSites' `run(attempts:)`).
///
/// Attempt 1 waits about `base`, attempt 2 about `2 × base`, and so on; the jitter spreads
/// each wait uniformly over ±`jitter` of itself so that tasks failing together (a database
/// restart) do not retry in lockstep.
public struct RetryPolicy: Sendable, Equatable {
    public var base: Duration
    public var maximum: Duration
    /// Fraction of the delay to spread over, 0 (none) to 1.
    public var jitter: Double

    public init(base: Duration = .seconds(1), maximum: Duration = .seconds(3600), jitter: Double = 0.2) {
        precondition(base > .zero && maximum >= base, "retry base must be positive and not above the maximum")
        precondition((0...1).contains(jitter), "jitter must be within 0...1")
        self.base = base
        self.maximum = maximum
        self.jitter = jitter
    }

    /// The delay before the retry that follows failed attempt `attempt` (1-based).
    /// `random` is a number in 0..<1 (injected so tests are exact).
    public func delay(afterAttempt attempt: Int, random: Double = Double.random(in: 0..<1)) -> Duration {
        let exponent = min(max(attempt - 1, 0), 62)
        let baseSeconds = base.seconds
        let raw = min(baseSeconds * Double(sign: .plus, exponent: exponent, significand: 1), maximum.seconds)
        let spread = raw * jitter * (2 * random - 1)
        let seconds = min(max(raw + spread, 0), maximum.seconds)
        return .milliseconds(Int64((seconds * 1000).rounded()))
    }
}

extension Duration {
    /// The duration in seconds, as a `Double`.
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// The duration in whole milliseconds, rounded down.
    public var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
