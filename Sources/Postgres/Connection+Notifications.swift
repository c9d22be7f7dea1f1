import CLibPQ
import Foundation

/// A NOTIFY received on a connection that LISTENs to its channel.
public struct PostgresNotification: Sendable, Equatable {
    public var channel: String
    public var payload: String
    /// The server process that sent it.
    public var senderPID: Int32
}

extension Connection {
    /// Starts listening on `channel` (quoted, so any name is safe).
    public func listen(_ channel: String) throws {
        try execute("LISTEN \(SQLIdentifier.quote(channel))")
    }

    /// Stops listening on `channel`.
    public func unlisten(_ channel: String) throws {
        try execute("UNLISTEN \(SQLIdentifier.quote(channel))")
    }

    /// Sends a notification (delivered at commit when inside a transaction).
    public func notify(_ channel: String, payload: String = "") throws {
        try execute("SELECT pg_notify($1, $2)", [channel, payload])
    }

    /// Waits up to `timeout` for a notification on a channel this connection listens to,
    /// sleeping in `poll(2)` on the socket, not spinning. Returns nil on timeout.
    /// Wraps `PQconsumeInput` and `PQnotifies`.
    public func waitForNotification(timeout: Duration) throws -> PostgresNotification? {
        let handle = try liveHandle()
        let deadline = ContinuousClock.now + timeout
        while true {
            if let notification = nextBufferedNotification(handle) { return notification }
            let remaining = ContinuousClock.now.duration(to: deadline)
            if remaining <= .zero { return nil }
            var pfd = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
            let millis = Int32(
                clamping: remaining.components.seconds * 1000
                    + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)
            let ready = poll(&pfd, 1, millis)
            if ready < 0 {
                if errno == EINTR { continue }
                throw PostgresError(.connectionClosed, message: "poll on the connection failed: errno \(errno)")
            }
            if ready == 0 { continue }
            if PQconsumeInput(handle) == 0 {
                markBrokenIfBad()
                throw connectionError(fallback: "the connection was lost while waiting for notifications")
            }
        }
    }

    /// Notifications already read from the socket, without waiting.
    public func pendingNotifications() throws -> [PostgresNotification] {
        let handle = try liveHandle()
        if PQconsumeInput(handle) == 0 {
            markBrokenIfBad()
            throw connectionError(fallback: "the connection was lost while reading notifications")
        }
        var notifications: [PostgresNotification] = []
        while let notification = nextBufferedNotification(handle) { notifications.append(notification) }
        return notifications
    }

    private func nextBufferedNotification(_ handle: OpaquePointer) -> PostgresNotification? {
        guard let raw = PQnotifies(handle) else { return nil }
        defer { PQfreemem(raw) }
        return PostgresNotification(
            channel: String(cString: raw.pointee.relname), payload: String(cString: raw.pointee.extra),
            senderPID: raw.pointee.be_pid)
    }
}
