import CLibPQ

extension Connection {
    /// Runs `COPY … TO STDOUT` and hands each chunk (one row for text and CSV formats) to
    /// `consume` as it arrives, so memory stays constant however large the output.
    /// Returns the number of rows copied. Wraps `PQexec`, `PQgetCopyData` and `PQgetResult`.
    ///
    /// COPY takes no bound parameters: build values into `sql` with `literal(_:)`.
    /// If `consume` throws, the COPY is cancelled on the server and the error rethrown.
    @discardableResult
    public func copyOut(_ sql: String, _ consume: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        let handle = try liveHandle()
        _ = try check(PQexec(handle, sql), expecting: [PGRES_COPY_OUT])
        var failure: (any Error)?
        while true {
            var buffer: UnsafeMutablePointer<CChar>?
            let length = PQgetCopyData(handle, &buffer, 0)
            if length > 0, let buffer {
                defer { PQfreemem(buffer) }
                if failure == nil {
                    do { try consume(UnsafeRawBufferPointer(start: buffer, count: Int(length))) } catch {
                        failure = error
                        makeCanceller()?.cancel()
                    }
                }
                continue
            }
            if length == -2 {
                markBrokenIfBad()
                throw PostgresError(.copy, message: "COPY failed: \(lastErrorMessage())")
            }
            break  // -1: the COPY is done; its final status follows.
        }
        return try finishCopy(handle, failure: failure)
    }

    /// Runs `COPY … FROM STDIN` and sends what `produce` writes, in chunks of any size.
    /// Returns the number of rows copied. Wraps `PQputCopyData` and `PQputCopyEnd`.
    @discardableResult
    public func copyIn(
        _ sql: String, _ produce: (_ send: (UnsafeRawBufferPointer) throws -> Void) throws -> Void
    )
        throws -> Int
    {
        let handle = try liveHandle()
        _ = try check(PQexec(handle, sql), expecting: [PGRES_COPY_IN])
        var failure: (any Error)?
        do {
            try produce { chunk in
                guard chunk.count > 0 else { return }
                let base = chunk.baseAddress!.assumingMemoryBound(to: CChar.self)
                if PQputCopyData(handle, base, Int32(chunk.count)) != 1 {
                    throw PostgresError(.copy, message: "COPY FROM STDIN failed: \(self.lastErrorMessage())")
                }
            }
        } catch {
            failure = error
        }
        let ended = failure == nil ? PQputCopyEnd(handle, nil) : PQputCopyEnd(handle, "aborted by the client")
        if ended != 1 {
            markBrokenIfBad()
            throw failure ?? PostgresError(.copy, message: "COPY FROM STDIN failed: \(lastErrorMessage())")
        }
        return try finishCopy(handle, failure: failure)
    }

    /// Reads the COPY's final results (all of them, so the connection is ready for the next
    /// statement) and returns its row count; throws `failure` first, else the server's error.
    private func finishCopy(_ handle: OpaquePointer, failure: (any Error)?) throws -> Int {
        var rows = 0
        var statusError: (any Error)?
        while let result = PQgetResult(handle) {
            do { rows = try check(result, expecting: [PGRES_COMMAND_OK]).affectedRows } catch {
                statusError = statusError ?? error
            }
        }
        if let failure { throw failure }
        if let statusError { throw statusError }
        return rows
    }

    /// A handle that cancels whatever statement this connection is running, from any
    /// thread. Wraps `PQgetCancel`.
    public func makeCanceller() -> StatementCanceller? {
        guard let handle = try? liveHandle(), let cancel = PQgetCancel(handle) else { return nil }
        return StatementCanceller(takingOwnershipOf: cancel)
    }
}

/// Cancels the statement a connection is running; usable from any thread (libpq documents
/// `PQcancel` as thread-safe). Wraps `PGcancel`, freed on deinit.
public final class StatementCanceller: @unchecked Sendable {
    private let pointer: OpaquePointer

    init(takingOwnershipOf pointer: OpaquePointer) { self.pointer = pointer }
    deinit { PQfreeCancel(pointer) }

    /// Sends the cancel request. Wraps `PQcancel`.
    public func cancel() {
        var errorBuffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(pointer, &errorBuffer, Int32(errorBuffer.count))
    }
}
