import Foundation

/// The suite's knobs, read from the environment (`scripts/safety` sets them).
///
/// - `LETHE_SAFETY_ITERATIONS` (default 3): random schemas per run.
/// - `LETHE_SAFETY_SEED` (default: random and printed; under `CI=true`, `ciSeed`): the first iteration's seed; iteration i
///   uses seed + i, so `LETHE_SAFETY_SEED=S LETHE_SAFETY_ITERATIONS=1` replays one.
/// - `LETHE_SAFETY_NEW_SYNTAX` (default 1): generate what only the fixed registry can express (key and
///   parent lists, keyless join-table leaves, `account:` on children). 0: the old syntax,
///   which writes `key: id` on tables whose primary key is (account, id) — issue 14 defect 1.
/// - `LETHE_SAFETY_PRECISION_CLOCKS=1`: also `timestamp(3)` clocks (refused before defect 12's
///   fix; defaults to the new-syntax setting).
/// - `LETHE_SAFETY_SINGLE_KEYS=1`: only single-column keys (ids unique across tenants), the
///   one shape today's code handles; the adversarial cases always use it without the new syntax,
///   so what they find is theirs alone.
struct SafetyOptions: Sendable {
    var iterations: Int
    var seed: UInt64
    var newSyntax: Bool
    var precisionClocks: Bool
    var singleKeysOnly = false

    /// The command that checks the configuration and writes the registry. After issue 14 it is
    /// `lethe policy sync`; this is the one place to switch it.
    static let syncArguments = ["policy", "sync"]

    /// The seed CI runs unless `LETHE_SAFETY_SEED` names another.
    static let ciSeed: UInt64 = 20_261_207

    static func fromEnvironment() -> SafetyOptions {
        let env = ProcessInfo.processInfo.environment
        let newSyntax = env["LETHE_SAFETY_NEW_SYNTAX"].map { $0 == "1" } ?? true
        return SafetyOptions(
            iterations: env["LETHE_SAFETY_ITERATIONS"].flatMap { Int($0) } ?? 3,
            // CI replays one known seed (a submission must not land or fail by chance); long runs
            // and developers draw a new one each time.
            seed: env["LETHE_SAFETY_SEED"].flatMap { UInt64($0) }
                ?? (env["CI"] == "true" ? ciSeed : UInt64.random(in: 1..<1_000_000_000)),
            newSyntax: newSyntax,
            precisionClocks: env["LETHE_SAFETY_PRECISION_CLOCKS"].map { $0 == "1" } ?? newSyntax,
            singleKeysOnly: env["LETHE_SAFETY_SINGLE_KEYS"] == "1")
    }
}
