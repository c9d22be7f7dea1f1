/// One broken promise, row by row.
struct Violation: Sendable {
    enum Kind: String, CaseIterable, Sendable {
        case wrongAccount = "deleted by another account's task"
        case withinMinimum = "deleted although newer than now minus the type's minimum"
        case notExpired = "deleted before it expired"
        case blocked = "deleted while retention was blocked (hold, state, switch, no policy)"
        case keepOnly = "deleted from a keep-only type"
        case guardFalse = "deleted although its guard predicate is false"
        case newestVersion = "deleted although among the newest versions kept"
        case noRecord = "deleted by a transaction without a deletion record"
        case parentKept = "child deleted without its parent"
        case blobReferenced = "blob deleted while a row still referenced it"
        case leftBehind = "left behind although eligible for the whole run"
        case logMismatch = "deletion log disagrees with the rows that went"
        case accepted = "a dangerous input was accepted"
        case runFailed = "lethe failed"
    }

    var kind: Kind
    var table: String
    var key: String
    var account: String?
    var why: String

    var line: String { "\(table) key \(key) account \(account ?? "-"): \(why)" }
}

/// A readable report: counts per kind, then the first rows of each kind.
enum SafetyReport {
    static func render(_ violations: [Violation], limit: Int = 8) -> String {
        guard !violations.isEmpty else { return "no violations" }
        var text = "\(violations.count) violation(s)\n"
        for kind in Violation.Kind.allCases {
            let matching = violations.filter { $0.kind == kind }
            guard !matching.isEmpty else { continue }
            text += "  \(matching.count) × \(kind.rawValue)\n"
            for violation in matching.prefix(limit) { text += "      \(violation.line)\n" }
            if matching.count > limit { text += "      … \(matching.count - limit) more\n" }
        }
        return text
    }

    /// `kind: count` for every kind seen, for one-line summaries.
    static func counts(_ violations: [Violation]) -> String {
        Violation.Kind.allCases.compactMap { kind in
            let n = violations.filter { $0.kind == kind }.count
            return n == 0 ? nil : "\(kind): \(n)"
        }.joined(separator: ", ")
    }
}
