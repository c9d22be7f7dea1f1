import Retention

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension RetryPolicy {
    /// Runs `body` until it succeeds, throws an error that is not transient
    /// (`TransientError.isTransient`), or has run `attempts` times (at least 1), waiting
    /// `delay(afterAttempt:)` between attempts; `onRetry` hears of each failure that will be
    /// retried (for logging), `sleep` is injected so that tests do not sleep.
    ///
    /// A site whose connection broke opens a new one on its next call, so each attempt runs on a
    /// working connection.
    public func run<T>(
        attempts: Int, sleep: (Duration) -> Void = RetryPolicy.sleepThread,
        onRetry: (_ error: any Error, _ attempt: Int, _ delay: Duration) -> Void = { _, _, _ in },
        _ body: () throws -> T
    ) throws -> T {
        precondition(attempts >= 1, "a retry needs at least one attempt")
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
}
