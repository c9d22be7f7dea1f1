import ArgumentParser
import Foundation
import Retention

/// The throttled run of `lethe bench retention` (issue 17): workers deleting a backlog while
/// the bench holds a transaction open (or reports a fake replication lag) for a while.
struct RetentionBenchThrottleOptions: ParsableArguments {
    /// What puts the database "under pressure".
    enum Pressure: String, ExpressibleByArgument, CaseIterable {
        /// A transaction of the application (not Lethe's) held open: throttle.max_transaction_age.
        case transaction
        /// A fake replication lag of 60 s the bench writes where throttle.replication_lag_query reads it.
        case lag
    }

    @Flag(
        name: .customLong("throttled"),
        help: "After the measurements, the throttled run: deletion rate over time while the database is under pressure."
    )
    var enabled = false
    @Flag(name: .customLong("throttled-only"), help: "Only the throttled run (no single statement, no comparison).")
    var only = false
    @Option(help: ArgumentHelp("The pressure of the throttled run: transaction or lag.", valueName: "kind"))
    var pressure = Pressure.transaction
    @Option(name: .customLong("pressure-at"), help: ArgumentHelp("Seconds after the workers start.", valueName: "s"))
    var pressureAt = 8
    @Option(
        name: .customLong("pressure-for"),
        help: ArgumentHelp("Seconds the pressure lasts; the run goes on as long again after it.", valueName: "s"))
    var pressureFor = 8
    @Option(
        name: .customLong("check-interval"),
        help: ArgumentHelp("The workers' throttle.check_interval in the throttled run.", valueName: "duration"))
    var checkInterval = "1s"
    @Option(
        help: ArgumentHelp(
            "Roots per second a worker deletes while throttled (throttle.floor_rate); 0 pauses.", valueName: "n"))
    var floor = 0
    @Option(help: ArgumentHelp("Where the throttled run's samples go (CSV, every 250 ms).", valueName: "file"))
    var csv = "lethe-bench-throttled.csv"

    /// The limit the pressure crosses at once (lag) or one second after it starts (transaction age).
    static let limitSeconds = 1

    /// `--check-interval`, checked by `validate()`.
    var interval: Duration { DurationText.parse(checkInterval) ?? .seconds(1) }

    func validate() throws {
        guard (1...3600).contains(pressureAt) else { throw ValidationError("--pressure-at \(pressureAt): 1 to 3600") }
        guard (1...3600).contains(pressureFor) else {
            throw ValidationError("--pressure-for \(pressureFor): 1 to 3600")
        }
        guard let interval = DurationText.parse(checkInterval),
            (Duration.milliseconds(100)...(.seconds(3600))).contains(interval)
        else {
            throw ValidationError("--check-interval \(checkInterval): expected 100ms to 1h, \(DurationText.accepted)")
        }
        guard (0...1_000_000).contains(floor) else {
            throw ValidationError(
                "--floor \(floor): roots per second per worker process while throttled, 0 (pause) to 1000000")
        }
    }

    /// The workers' `throttle:` block: one limit the pressure crosses, everything else off.
    var throttleBlock: String {
        let limit = "\(Self.limitSeconds)s"
        let signal =
            switch pressure {
            case .transaction: "max_transaction_age: \(limit), max_replication_lag: 0"
            case .lag:
                "max_transaction_age: 0, max_replication_lag: \(limit), "
                    + "replication_lag_query: \"SELECT seconds FROM public.lethe_bench_lag\""
            }
        return
            "{ check_interval: \(DurationText.format(interval)), max_lock_waits: 1000000, \(signal), floor_rate: \(floor) }"
    }

    /// Says what the pressure is and which limit it crosses.
    var pressureDescription: String {
        switch pressure {
        case .transaction:
            "a transaction of the application held open (throttle.max_transaction_age \(Self.limitSeconds)s)"
        case .lag: "a fake replication lag of 60 s (throttle.max_replication_lag \(Self.limitSeconds)s)"
        }
    }
}
