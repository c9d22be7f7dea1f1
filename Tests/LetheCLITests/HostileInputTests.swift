import Foundation
import Postgres
import TestSupport
import Testing

/// The hostile-input suite (issue 19): every case of `HostileCase.all` runs the real `lethe`
/// against the shared `HostileWorld` and must be refused with its exit status, a message naming
/// the value, an unchanged database (`HostileWorld.digest`) and no secret in its output.
/// Serialized: a case proves the database unchanged, so no other case may write meanwhile.
@Suite(.serialized) struct HostileInputTests {
    @Test(arguments: HostileCase.all)
    func refused(_ hostile: HostileCase) async throws {
        // Built on first use: blocking work that must not hold a cooperative thread meanwhile.
        let world = try await offThePool { try HostileWorld.shared.get() }
        let result = try await offThePool { try Self.run(hostile, in: world) }
        if let known = hostile.knownIssue {
            withKnownIssue(Comment(rawValue: known), isIntermittent: true) {
                #expect(result.changed.isEmpty, "the database changed: \(result.changed.joined(separator: ", "))")
            }
        } else {
            #expect(result.changed.isEmpty, "the database changed: \(result.changed.joined(separator: ", "))")
        }
        #expect(
            result.process.status == hostile.status,
            "exit \(result.process.status), expected \(hostile.status):\n\(result.process.output)")
        for mention in hostile.mentions {
            #expect(
                result.process.stderr.contains(mention),
                "stderr does not name \(mention.debugDescription):\n\(result.process.stderr)")
        }
        let leaked = world.secrets.filter { result.process.output.lowercased().contains($0.lowercased()) }
        #expect(leaked.isEmpty, "a secret was printed:\n\(result.process.output)")
        #expect(!result.process.stderr.contains("Fatal error"), "\(result.process.stderr)")
    }

    /// The digest sees a change: a no-op UPDATE (new row version, same values) and a
    /// `lethe account hold`, which writes one row.
    @Test func theDigestSeesEveryWrite() async throws {
        // Built on first use: blocking work that must not hold a cooperative thread meanwhile.
        let world = try await offThePool { try HostileWorld.shared.get() }
        try await offThePool {
            let before = try world.digest()
            try world.connection.execute(
                "UPDATE app.audit_log SET account_id = account_id WHERE id = (SELECT min(id) FROM app.audit_log)")
            let afterUpdate = try world.digest()
            #expect(Self.changed(before, afterUpdate) == ["app.audit_log"])
            let held = try LetheProcess.run(
                ["account", "hold", "2", "--reason", "digest sanity check", "--config", world.configPath])
            #expect(held.status == 0, "\(held.output)")
            #expect(!Self.changed(afterUpdate, try world.digest()).isEmpty)
            let hold = try world.connection.scalar(
                "SELECT max(id)::text FROM lethe.holds", as: String.self)
            _ = try LetheProcess.run(["account", "release", hold, "--config", world.configPath])
        }
    }

    struct Outcome: Sendable {
        var process: ProcessResult
        var changed: [String]
    }

    static func run(_ hostile: HostileCase, in world: HostileWorld) throws -> Outcome {
        let invocation = try hostile.make(world)
        let (connection, ownConfig): (Connection, String) =
            switch hostile.target {
            case .example: (world.connection, world.configPath)
            case .varcharAccounts: (world.narrowVarchar.connection, world.narrowVarchar.configPath)
            case .integerAccounts: (world.narrowInteger.connection, world.narrowInteger.configPath)
            }
        var arguments = invocation.arguments
        var written: String?
        if let text = invocation.config {
            written = try writeConfig(text)
            arguments.insert(contentsOf: ["--config", written!], at: arguments.firstIndex(of: "--") ?? arguments.count)
        } else if invocation.withConfig {
            arguments.insert(
                contentsOf: ["--config", ownConfig], at: arguments.firstIndex(of: "--") ?? arguments.count)
        }
        defer { if let written { try? FileManager.default.removeItem(atPath: written) } }
        let before = try HostileWorld.digest(connection)
        let process = try LetheProcess.run(arguments, environment: invocation.environment)
        let after = try HostileWorld.digest(connection)
        return Outcome(process: process, changed: changed(before, after))
    }

    static func changed(_ before: [String: String], _ after: [String: String]) -> [String] {
        Set(before.keys).union(after.keys).filter { before[$0] != after[$0] }.sorted()
    }
}
