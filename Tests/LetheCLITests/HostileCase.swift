import Foundation
import TestSupport
import Testing

/// One hostile input for the real `lethe`: how to run it, and what must come back.
struct HostileCase: Sendable, CustomTestStringConvertible {
    /// The database a case runs against (and whose digest must not change).
    enum Target: Sendable { case example, varcharAccounts, integerAccounts }

    /// What to run: arguments, and the configuration (the target's own unless `config` gives
    /// a text, or `withConfig` is false).
    struct Invocation: Sendable {
        var arguments: [String]
        var config: String? = nil
        var withConfig = true
        var environment: [String: String] = [:]
    }

    var name: String
    /// 2: bad input; 1: runtime failure.
    var status: Int32
    /// What stderr must say: the offending value (or key, or path) and what is accepted.
    var mentions: [String]
    var target: Target = .example
    var make: @Sendable (HostileWorld) throws -> Invocation
    /// A defect found and not fixed yet: the database-unchanged check is a known issue.
    var knownIssue: String? = nil

    var testDescription: String { name }

    /// `lethe arguments…` with the world's configuration.
    static func cli(
        _ name: String, _ arguments: [String], status: Int32 = 2, mentions: [String], target: Target = .example
    ) -> HostileCase {
        HostileCase(name: name, status: status, mentions: mentions, target: target) { _ in .init(arguments: arguments) }
    }

    /// `lethe arguments…` built from the world (its paths).
    static func world(
        _ name: String, status: Int32 = 2, mentions: [String],
        _ arguments: @escaping @Sendable (HostileWorld) -> [String]
    ) -> HostileCase {
        HostileCase(name: name, status: status, mentions: mentions) { .init(arguments: arguments($0)) }
    }

    /// `lethe command…` with the world's configuration text where `old` is replaced by `new`
    /// (the case fails if `old` is not there: an edit that changes nothing proves nothing).
    static func config(
        _ name: String, replacing old: String, with new: String, command: [String] = ["policy", "sync"],
        status: Int32 = 2, mentions: [String]
    ) -> HostileCase {
        HostileCase(name: name, status: status, mentions: mentions) { world in
            guard world.configText.contains(old) else {
                throw TestSetupError("case \(name): the configuration has no \(old.debugDescription) to replace")
            }
            return .init(arguments: command, config: world.configText.replacingOccurrences(of: old, with: new))
        }
    }

    /// A configuration edit inside the audit_log entity type (after its `table:` line).
    static func auditLog(
        _ name: String, adding lines: String, command: [String] = ["policy", "sync"], mentions: [String]
    ) -> HostileCase {
        config(
            name, replacing: "    table: app.audit_log\n", with: "    table: app.audit_log\n" + lines + "\n",
            command: command, mentions: mentions)
    }

    /// A configuration whose `key: value` line (an existing one) is replaced by `value`.
    static func setting(
        _ name: String, _ line: String, _ value: String, command: [String] = ["run", "--until-idle"],
        mentions: [String]
    ) -> HostileCase {
        config(name, replacing: line, with: value, command: command, mentions: mentions)
    }
}
