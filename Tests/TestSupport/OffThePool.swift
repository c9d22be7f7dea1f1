import Foundation

/// Runs blocking test work (child processes waited for, polling sleeps) on a thread of its
/// own and awaits it. On a 2-core machine the cooperative pool has two threads: long blocking
/// tests held there stall every other async test of the process for minutes.
public func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
