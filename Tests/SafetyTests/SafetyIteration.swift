import Foundation
import LetheBench
import Postgres
import TestSupport

/// An input issue 14 says must be refused, tried on top of a random iteration.
enum Adversary: String, Sendable {
    case none
    /// Defect 2: a tenant admin sets `'-1200 mons 36031 days'` (a cutoff in the future).
    case mixedSignInterval
    /// Defect 4: `lethe account add 01` while account 1 (on hold) exists on a bigint column.
    case aliasedAccount
    /// Defect 5: a predicate whose quote hides behind U+0301 and escapes the filter.
    case predicateEscape
}

/// What one iteration found.
struct IterationResult: Sendable {
    var seed: UInt64
    var adversary: Adversary
    var violations: [Violation] = []
    var notes: [String] = []
    /// The registry check refused the old `key: id` form on a composite key (defect 1 fixed).
    var refusedOldKeys = false

    var summary: String {
        "seed \(seed) [\(adversary.rawValue)]: "
            + (violations.isEmpty ? "ok" : SafetyReport.counts(violations))
            + (notes.isEmpty ? "" : "; " + notes.joined(separator: "; "))
    }
}

/// One iteration: a random schema and tenants in a database of its own, Lethe run for real
/// while the mutator changes settings, then every deletion checked row by row.
struct SafetyIteration: Sendable {
    var seed: UInt64
    var options: SafetyOptions
    var adversary: Adversary = .none

    static let runTimeout: TimeInterval = 120

    func run() async throws -> IterationResult {
        print(
            "safety: iteration seed \(seed) (\(adversary.rawValue)); replay with LETHE_SAFETY_SEED=\(seed) LETHE_SAFETY_ITERATIONS=1"
        )
        let iteration = self
        let first = try await withMigratedDatabase { database in
            // Minutes of waiting for `lethe` and polling: off the cooperative pool.
            try await offThePool {
                let connection = try database.connect()
                defer { connection.close() }
                return try iteration.run(database, connection)
            }
        }
        guard first.refusedOldKeys else { return first }
        // After defect 1's fix the old `key: id` form is refused: check the rest of the
        // iteration on keys it can express.
        var retry = self
        retry.options.singleKeysOnly = true
        print("safety: seed \(seed): the old key form was refused; the same seed again with single keys")
        var second = try await retry.run()
        second.notes.insert(contentsOf: first.notes, at: 0)
        return second
    }

    private func run(_ database: TestDatabase, _ connection: Connection) throws -> IterationResult {
        var result = IterationResult(seed: seed, adversary: adversary)
        guard try connection.scalar("SHOW track_commit_timestamp", as: String.self) == "on" else {
            throw TestSetupError(
                "the safety suite needs track_commit_timestamp=on: start the servers with scripts/services.sh or run scripts/safety"
            )
        }
        var options = options
        if adversary != .none && !options.newSyntax { options.singleKeysOnly = true }
        var generator = SchemaGenerator(options: options, seed: seed)
        var schema = generator.schema(accountType: adversary == .aliasedAccount ? "bigint" : nil)
        switch adversary {
        case .none, .aliasedAccount: break
        case .mixedSignInterval:  // its target: no versions or guard to hide what the cutoff does
            schema.types[0].versions = nil
            schema.types[0].guardPredicate = .none
            schema.types[0].minimum = Span(yaml: "7d", sql: "7 days")
        case .predicateEscape: schema.types[0].guardPredicate = .escape
        }
        let writer = SchemaWriter(schema: schema, options: options)
        try connection.executeScript(writer.ddl)
        let now = try connection.scalar("SELECT (extract(epoch FROM now()) * 1000000)::bigint", as: Int64.self)
        let ids = (1...Int.random(in: 3...5, using: &generator.random)).map {
            schema.accountType == "bigint" ? "\($0)" : "ten-\($0)"
        }
        let unregistered = schema.accountType == "bigint" ? "\(ids.count + 1)" : "ten-\(ids.count + 1)"
        var data = DataWriter(schema: schema, seed: seed &+ 1, now: now)
        try data.populate(accounts: ids + [unregistered], on: connection)

        let config = try writeConfig(writer.yaml(databaseURL: database.url))
        defer { try? FileManager.default.removeItem(atPath: config) }
        let sync = try LetheProcess.run(SafetyOptions.syncArguments + ["--config", config])
        if sync.status != 0 {
            return refused(sync, result, schema: schema, yaml: writer.yaml(databaseURL: "…"))
        }
        if adversary == .predicateEscape {
            result.violations.append(
                Violation(
                    kind: .accepted, table: schema.types[0].root.label, key: "-", account: nil,
                    why: "`\(SafetyOptions.syncArguments.joined(separator: " "))` accepted the predicate "
                        + "\(schema.types[0].guardPredicate.sql(keyColumn: "…")!.debugDescription)"))
        }

        var tenants = TenantSetup(schema: schema, seed: seed &+ 2)
        try tenants.apply(accounts: ids, on: connection)
        try attack(ids: ids, schema: schema, config: config, connection: connection, result: &result)

        try connection.executeScript(writer.auditDDL)
        try connection.executeScript(writer.snapshot)
        var timeline = try PolicyTimeline.load(connection)
        let started = try connection.scalar(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint", as: Int64.self)

        // The mutator changes at most half the accounts, so the others prove "nothing left".
        let changing = Array(ids.shuffled(using: &generator.random).prefix(max(1, ids.count / 2)))
        let changes = Int.random(in: 4...12, using: &generator.random)
        try runLethe(
            config: config, database: database, changing: adversary == .none ? changing : [], changes: changes,
            types: schema.types.map(\.name), timeline: &timeline, result: &result)
        var checker = SafetyChecker(schema: schema, timeline: timeline, started: started, connection: connection)
        result.violations += try checker.check()
        let deleted = try connection.scalar("SELECT count(*) FROM safety.deleted", as: Int64.self)
        let total = try connection.scalar("SELECT count(*) FROM safety.initial", as: Int64.self)
        result.notes.insert("\(deleted) of \(total) rows deleted", at: 0)
        print("safety: " + result.summary)
        if !result.violations.isEmpty {
            for entry in timeline.log {
                print("safety: mutator committed at \(entry.at): \(entry.account) \(entry.change)")
            }
            print(
                "safety: seed \(seed) config:\n\(writer.yaml(databaseURL: "…"))"
                    + SafetyReport.render(result.violations))
        }
        return result
    }

    /// `lethe run --until-idle` (at most `runTimeout`) while the mutator changes `changing`;
    /// the mutator's log goes into `timeline`, failures into `result`.
    private func runLethe(
        config: String, database: TestDatabase, changing: [String], changes: Int, types: [String],
        timeline: inout PolicyTimeline, result: inout IterationResult
    ) throws {
        let mutator =
            changing.isEmpty
            ? nil
            : Mutator(url: database.url, seed: seed &+ 3, accounts: changing, types: types, maxChanges: changes).start()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-safety-\(seed).log")
        defer { try? FileManager.default.removeItem(at: log) }
        let process = try LetheProcess.launch(["run", "--until-idle", "--config", config], log: log)
        let deadline = Date().addingTimeInterval(Self.runTimeout)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            result.violations.append(
                Violation(
                    kind: .runFailed, table: "-", key: "-", account: nil,
                    why: "still running after \(Self.runTimeout) s"))
        }
        if let mutator {
            mutator.stop()
            while !mutator.finished { usleep(10_000) }
            timeline.replay(mutator.entries)
            result.notes.append("\(mutator.entries.count) changes by the mutator")
        }
        if process.terminationStatus != 0 {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            result.violations.append(
                Violation(
                    kind: .runFailed, table: "-", key: "-", account: nil,
                    why: "lethe run exited \(process.terminationStatus): \(text.suffix(600))"))
        }
    }

    /// The registry check refused the configuration: right for the escaping predicate, and
    /// for the old key form on a key that is not unique alone (after defect 1's fix); anything
    /// else is a failure of the suite's own schema.
    private func refused(
        _ sync: ProcessResult, _ partial: IterationResult, schema: SchemaModel, yaml: String
    )
        -> IterationResult
    {
        var result = partial
        let dangerousKeys =
            !options.newSyntax && schema.types.contains { $0.tables.contains { $0.keyColumns.count > 1 } }
        let escapeRefused = adversary == .predicateEscape && sync.status == 2 && sync.stderr.contains(".where")
        if escapeRefused || (dangerousKeys && sync.status == 2 && sync.stderr.contains("key")) {
            result.notes.append("configuration refused (safe): \(sync.stderr.prefix(300))")
            result.refusedOldKeys = adversary != .predicateEscape
        } else {
            result.violations.append(
                Violation(
                    kind: .runFailed, table: "-", key: "-", account: nil,
                    why: "\(SafetyOptions.syncArguments.joined(separator: " ")) exited \(sync.status): \(sync.output)"))
            print("safety: seed \(seed) config:\n\(yaml)")
        }
        print("safety: " + result.summary)
        return result
    }

    /// The adversarial inputs of issue 14, tried as the application or an operator would.
    private func attack(
        ids: [String], schema: SchemaModel, config: String, connection: Connection, result: inout IterationResult
    )
        throws
    {
        let target = ids[0]
        let type = schema.types[0].name
        switch adversary {
        case .none, .predicateEscape:
            return
        case .mixedSignInterval:
            // Make the target account runnable, then try the interval as its tenant admin.
            try connection.execute(
                "SELECT lethe.release_hold(id) FROM lethe.holds WHERE account_id = $1 AND released_at IS NULL", [target]
            )
            try connection.execute("SELECT lethe.set_account_state($1, 'active')", [target])
            try connection.execute("SELECT lethe.operator_set_retention_disabled($1, false)", [target])
            try connection.execute("SELECT lethe.operator_set_policy_disabled($1, $2, false)", [target, type])
            try connection.execute("SELECT lethe.set_policy_enabled($1, $2, true)", [target, type])
            do {
                try connection.withTransaction { connection in
                    try connection.execute("SET LOCAL ROLE lethe_tenant_admin")
                    try connection.execute(
                        "SELECT * FROM lethe.set_policy($1, $2, '-1200 mons 36031 days')", [target, type])
                }
                result.violations.append(
                    Violation(
                        kind: .accepted, table: type, key: "-", account: target,
                        why: "lethe_tenant_admin set the interval '-1200 mons 36031 days'"))
            } catch {
                result.notes.append("mixed-sign interval refused: \(error)")
            }
        case .aliasedAccount:
            try connection.execute("SELECT lethe.place_hold($1, NULL, 'alias test', NULL)", [target])
            let alias = "0" + target
            let add = try LetheProcess.run(["account", "add", alias, "--config", config])
            guard add.status == 0 else {
                result.notes.append("`lethe account add \(alias)` refused: \(add.stderr.prefix(200))")
                return
            }
            result.violations.append(
                Violation(
                    kind: .accepted, table: "lethe.accounts", key: alias, account: target,
                    why: "`lethe account add \(alias)` accepted while account \(target) exists"))
            let preview = try LetheProcess.run(["policy", "preview", "--account", alias, "--config", config])
            result.notes.append(
                "preview --account \(alias): \(preview.stdout.split(separator: "\n").prefix(4).joined(separator: " | "))"
            )
        }
    }
}
