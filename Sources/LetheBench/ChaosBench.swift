import ArgumentParser
import Foundation
import LetheCLI
import LetheConfiguration

/// `lethe bench chaos`: the example application under faults and load, then every deletion
/// checked row by row and every archive read back (docs/reliability.md).
struct ChaosBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos",
        abstract: "Run a coordinator pair and workers under injected faults, then check every deletion and archive.",
        discussion: """
            Starts a throwaway PostgreSQL (Unix socket, track_commit_timestamp on) and two \
            loopback sshds, loads the example application (examples/contact-centre) with \
            --tenants tenants of skewed sizes (some archiving to two sftp:// sites and a file:// \
            site), and runs two `lethe coordinator` and --workers `lethe worker` processes while \
            a second session keeps changing policies, holds and account states. Faults come at \
            random times from --seed: kill -9 of a random worker every few seconds, the leading \
            coordinator killed twice, PostgreSQL restarted once (fast shutdown), one sshd \
            stopped (a minute in a 10-minute run, scaled with --duration), a worker's spool \
            directory deleted, a worker stopped (SIGSTOP) past its lease and resumed. Each fault \
            is printed as it is injected. After a quiet drain it checks, by SQL and by reading \
            every archive back: no row deleted that was not eligible when it could have been \
            decided; every deleted row of an archiving account in exactly one archive, of a \
            job that reached deleted, on every site; every eligible row gone; no task stuck \
            running; no worker row alive without a process. Exits 0 when every check passes, \
            1 naming the failing rows. Everything is removed at the end unless --keep.
            """)

    @Option(
        help: ArgumentHelp(
            "How long faults are injected, e.g. 10m, 2m, 90s (the drain comes after).", valueName: "duration"))
    var duration = "10m"
    @Option(help: "Seed of the fault schedule and the mutator (default: random, printed).") var seed: UInt64?
    @Option(help: "Tenants of the example application (sizes skewed: tenant i gets about scale/i).") var tenants = 100
    @Option(help: "Conversations of the largest tenant.") var scale = 1000
    @Option(help: "Worker processes.") var workers = 4
    @Option(help: "Slots per worker process.") var concurrency = 2
    @Flag(help: "Keep the run's directory (database, sites, logs) afterwards.") var keep = false
    /// Test-only: the run itself deletes a held row mid-run, which the checks must catch
    /// (exit 1); proves the checker can fail.
    @Flag(name: .customLong("inject-forbidden-deletion"), help: .hidden) var injectForbiddenDeletion = false

    var seconds: Int { Self.parseDuration(duration) ?? 0 }

    static func parseDuration(_ text: String) -> Int? {
        let units: [(String, Int)] = [("h", 3600), ("m", 60), ("s", 1)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            guard let value = Int(text.dropLast()), value >= 0, value <= 24 * 3600 else { return nil }
            return value * factor
        }
        return Int(text)
    }

    func validate() throws {
        guard let seconds = Self.parseDuration(duration), (30...86_400).contains(seconds) else {
            throw ValidationError("--duration \(duration) is not a duration from 30s to 24h, e.g. 2m, 10m or 90s")
        }
        if tenants < 12 || tenants > 1000 { throw ValidationError("--tenants \(tenants) must be between 12 and 1000") }
        if scale < 40 || scale > 1_000_000 { throw ValidationError("--scale \(scale) must be between 40 and 1000000") }
        if workers < 2 || workers > 32 { throw ValidationError("--workers \(workers) must be between 2 and 32") }
        if concurrency < 1 || concurrency > 64 {
            throw ValidationError("--concurrency \(concurrency) must be between 1 and 64")
        }
    }

    func run() async throws {
        let example: URL
        if let found = BundledDirectory.locate("examples/contact-centre", containing: "lethe.yml") {
            example = found
        } else {
            throw UsageError(
                "cannot find examples/contact-centre (looked in "
                    + BundledDirectory.candidates("examples/contact-centre").joined(separator: ", ")
                    + "); run from the repository")
        }
        if let reason = DemoSSHD.unavailableReason { throw UsageError("lethe bench chaos needs sshd: \(reason)") }
        var generator = SystemRandomNumberGenerator()
        let settings = ChaosSettings(
            seconds: seconds, seed: seed ?? UInt64.random(in: 1...999_999, using: &generator), tenants: tenants,
            scale: scale, workers: workers, concurrency: concurrency, keep: keep,
            injectForbiddenDeletion: injectForbiddenDeletion, example: example)
        let passed = try await ChaosRun.onThread { try ChaosRun.run(settings) }
        if !passed { throw ExitCode.failure }
    }
}

/// What one chaos run is asked to do.
struct ChaosSettings: Sendable {
    var seconds: Int
    var seed: UInt64
    var tenants: Int
    var scale: Int
    var workers: Int
    var concurrency: Int
    var keep: Bool
    var injectForbiddenDeletion: Bool
    var example: URL
}
