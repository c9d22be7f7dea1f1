import BackupSites
import Retention
import SFTP
import Synchronization
import Testing

@Suite("Retrying site operations")
struct RetryPolicyTests {
    struct Flaky: TransientError {
        var isTransient: Bool
    }

    /// The waits a policy asked for.
    final class Waits: Sendable {
        let list = Mutex<[Duration]>([])
        var count: Int { list.withLock { $0.count } }
    }

    static let policy = RetryPolicy(base: .seconds(1), maximum: .seconds(5), jitter: 0.2)

    /// `body` run under `policy`, recording the waits instead of sleeping.
    static func run<T>(
        attempts: Int = 3, waits: Waits = Waits(),
        onRetry: (_ error: any Error, _ attempt: Int, _ delay: Duration) -> Void = { _, _, _ in },
        _ body: () throws -> T
    ) throws -> T {
        try policy.run(
            attempts: attempts, sleep: { wait in waits.list.withLock { $0.append(wait) } }, onRetry: onRetry, body)
    }

    @Test(arguments: [
        (1, 0.5, Duration.seconds(1)), (2, 0.5, .seconds(2)), (3, 0.5, .seconds(4)), (4, 0.5, .seconds(5)),
        (30, 0.5, .seconds(5)), (1, 0.0, .milliseconds(800)), (2, 0.99999, .milliseconds(2400)),
        (4, 0.99999, .seconds(5)),
    ])
    func delays(attempt: Int, random: Double, expected: Duration) {
        let delay = Self.policy.delay(afterAttempt: attempt, random: random)
        #expect(
            abs((delay - expected).components.attoseconds) < 1_000_000_000_000_000
                && (delay - expected).components.seconds == 0)
    }

    @Test func transientErrorsAreRetriedUntilSuccess() throws {
        let waits = Waits()
        var calls = 0
        var heard: [Int] = []
        let value = try Self.run(waits: waits, onRetry: { _, attempt, _ in heard.append(attempt) }) {
            calls += 1
            if calls < 3 { throw Flaky(isTransient: true) }
            return 42
        }
        #expect(value == 42)
        #expect(calls == 3)
        #expect(heard == [1, 2])
        #expect(waits.count == 2)
    }

    @Test func permanentErrorsAreNotRetried() {
        var calls = 0
        #expect(throws: Flaky.self) {
            try Self.run {
                calls += 1
                throw Flaky(isTransient: false)
            }
        }
        #expect(calls == 1)
    }

    @Test func unknownErrorsAreNotRetried() {
        struct Other: Error {}
        var calls = 0
        #expect(throws: Other.self) {
            try Self.run {
                calls += 1
                throw Other()
            }
        }
        #expect(calls == 1)
    }

    @Test func givesUpAfterTheLastAttempt() {
        var calls = 0
        #expect(throws: Flaky.self) {
            try Self.run(attempts: 4) {
                calls += 1
                throw Flaky(isTransient: true)
            }
        }
        #expect(calls == 4)
    }

    @Test func sftpErrorsCarryTheirTransience() {
        #expect((SFTPError(.connect, "x") as any TransientError).isTransient)
        #expect((SFTPError(.timeout, "x") as any TransientError).isTransient)
        #expect(!(SFTPError(.hostKeyMismatch, "x") as any TransientError).isTransient)
        #expect(!(SFTPError(.authentication, "x") as any TransientError).isTransient)
        #expect(!(SFTPError(.sizeMismatch, "x") as any TransientError).isTransient)
        #expect(!(SFTPError(.sftp, "x", code: 3) as any TransientError).isTransient)
        #expect((SFTPError(.sftp, "x", code: 7) as any TransientError).isTransient)
    }
}
