import ArgumentParser
import Foundation

/// How one `lethe bench retention` measurement sizes its batches: always `roots` roots, or
/// adaptive batches of at most `roots` holding the worker's target batch duration.
struct RetentionBenchVariant: Equatable, CustomStringConvertible {
    var roots: Int
    var adaptive: Bool

    /// What `--batches` accepts, for its help and its errors.
    static let accepted = "a list of root counts (fixed batches) and adaptive:N (adaptive batches of at most N roots)"

    /// Parses `--batches`: `1000,5000,adaptive:5000`; a bare `adaptive` is at most `defaultRoots`.
    static func parse(_ list: String, defaultRoots: Int) throws -> [RetentionBenchVariant] {
        let items = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let variants = try items.map { item -> RetentionBenchVariant in
            let (adaptive, number) =
                item == "adaptive"
                ? (true, "\(defaultRoots)")
                : item.hasPrefix("adaptive:") ? (true, String(item.dropFirst("adaptive:".count))) : (false, item)
            guard let roots = Int(number), (1...100_000).contains(roots) else {
                throw ValidationError(
                    "--batches \(list): \"\(item)\" is not a batch; expected \(accepted), N from 1 to 100000")
            }
            return RetentionBenchVariant(roots: roots, adaptive: adaptive)
        }
        guard !variants.isEmpty else { throw ValidationError("--batches \(list): expected \(accepted)") }
        return variants
    }

    /// The BATCH column, as `--batches` spells it: `1000`, `adaptive:5000`.
    var description: String { adaptive ? "adaptive:\(roots)" : "\(roots)" }
}
