import Testing

/// The randomised adversarial safety suite of issue 14 ("Prove it"): random operator schemas
/// and tenants, Lethe run for real while a second session changes settings, every deletion
/// checked row by row against the settings in force when it committed. Serialized: each test
/// blocks a thread of the cooperative pool while Lethe runs.
@Suite(.serialized) struct SafetyTests {
    static let options = SafetyOptions.fromEnvironment()

    static func expectSafe(_ results: [IterationResult]) {
        for result in results where !result.violations.isEmpty {
            Issue.record(
                "seed \(result.seed) [\(result.adversary.rawValue)]: \(SafetyReport.render(result.violations))")
        }
    }

    @Test func randomSchemasTenantsAndConcurrentChanges() async throws {
        let options = Self.options
        print(
            "safety: LETHE_SAFETY_SEED=\(options.seed) LETHE_SAFETY_ITERATIONS=\(options.iterations) "
                + "new syntax \(options.newSyntax), precision clocks \(options.precisionClocks)")
        var results: [IterationResult] = []
        for index in 0..<options.iterations {
            results.append(try await SafetyIteration(seed: options.seed &+ UInt64(index), options: options).run())
        }
        Self.expectSafe(results)
    }

    @Test func tenantAdminCannotSetAMixedSignInterval() async throws {
        let result = try await SafetyIteration(
            seed: Self.options.seed, options: Self.options, adversary: .mixedSignInterval
        ).run()
        Self.expectSafe([result])
    }

    @Test func accountIdsDoNotAlias() async throws {
        let result = try await SafetyIteration(
            seed: Self.options.seed, options: Self.options, adversary: .aliasedAccount
        ).run()
        Self.expectSafe([result])
    }

    @Test func predicatesCannotEscapeTheFilter() async throws {
        let result = try await SafetyIteration(
            seed: Self.options.seed, options: Self.options, adversary: .predicateEscape
        ).run()
        Self.expectSafe([result])
    }
}
