#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension BackupSites {
    /// Retries a site operation that failed with a transient error (`TransientError.isTransient`),
    /// waiting `baseDelay`, then twice that, and so on up to `maximumDelay`, each spread by ±`jitter`.
    ///
    /// Nested in `BackupSites` so it does not collide with `Retention.RetryPolicy` (task retries).
    /// A site whose connection broke opens a new one on its next call, so each attempt runs on a
    /// working connection.
    public struct RetryPolicy: Sendable {
        /// Attempts in all, the first included (at least 1).
        public var attempts: Int
        public var baseDelay: Duration
        public var maximumDelay: Duration
        /// Fraction of each delay to spread over, 0...1.
        public var jitter: Double
        /// How to wait between attempts (injected so that tests do not sleep).
        public var sleep: @Sendable (Duration) -> Void

        public init(
            attempts: Int = 3, baseDelay: Duration = .seconds(1), maximumDelay: Duration = .seconds(30),
            jitter: Double = 0.2, sleep: @escaping @Sendable (Duration) -> Void = RetryPolicy.sleepThread
        ) {
            precondition(attempts >= 1, "a retry policy needs at least one attempt")
            precondition(baseDelay >= .zero && maximumDelay >= baseDelay, "retry delays must be 0 ≤ base ≤ maximum")
            precondition((0...1).contains(jitter), "jitter must be within 0...1")
            self.attempts = attempts
            self.baseDelay = baseDelay
            self.maximumDelay = maximumDelay
            self.jitter = jitter
            self.sleep = sleep
        }

        /// The wait after failed attempt `attempt` (1-based); `random` in 0..<1 picks the jitter.
        public func delay(afterAttempt attempt: Int, random: Double = Double.random(in: 0..<1)) -> Duration {
            let doubling = Double(sign: .plus, exponent: min(max(attempt - 1, 0), 62), significand: 1)
            let raw = min(seconds(baseDelay) * doubling, seconds(maximumDelay))
            let spread = raw * jitter * (2 * random - 1)
            let wait = min(max(raw + spread, 0), seconds(maximumDelay))
            return .nanoseconds(Int64((wait * 1e9).rounded()))
        }

        /// Runs `body` until it succeeds, throws an error that is not transient, or has run
        /// `attempts` times; `onRetry` hears of each failure that will be retried (for logging).
        public func run<T>(
            onRetry: (_ error: any Error, _ attempt: Int, _ delay: Duration) -> Void = { _, _, _ in },
            _ body: () throws -> T
        ) throws -> T {
            var attempt = 1
            while true {
                do {
                    return try body()
                } catch let error as any TransientError where error.isTransient && attempt < attempts {
                    let wait = delay(afterAttempt: attempt)
                    onRetry(error, attempt, wait)
                    sleep(wait)
                    attempt += 1
                }
            }
        }

        /// Blocks the calling thread for `duration`. Wraps `nanosleep`.
        public static func sleepThread(_ duration: Duration) {
            let (seconds, attoseconds) = duration.components
            var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
            var remaining = timespec()
            while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
        }

        private func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }
    }
}

extension BackupSite {
    /// `upload(localFile:name:)` under `policy`: a broken connection is reopened and the upload
    /// retried; the temporary-name protocol makes the retry safe.
    public func upload(localFile: String, name: String, retrying policy: BackupSites.RetryPolicy) throws -> Int64 {
        try policy.run { try upload(localFile: localFile, name: name) }
    }
}
