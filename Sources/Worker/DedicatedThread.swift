import Postgres

/// Runs blocking work (libssh2, libarchive, file I/O) on an OS thread of its own, never on
/// Swift's cooperative pool, and awaits its result.
public enum DedicatedThread {
    public static func run<T: Sendable>(name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            NamedThread.start(name) { continuation.resume(with: Result { try body() }) }
        }
    }
}
