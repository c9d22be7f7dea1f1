import Foundation
import Postgres
import Retention

/// The rows of `lethe.workers`: each worker and coordinator process, with its heartbeat,
/// so that `lethe.worker_status` can tell alive from lost.
public struct ProcessRegistry: Sendable {
    /// What a process says about itself when it starts.
    public struct Registration: Sendable {
        public var id: UUID
        public var role: String
        public var slots: Int
        public var lease: Duration
        public var version: String

        public init(id: UUID = UUID(), role: String, slots: Int, lease: Duration, version: String) {
            self.id = id
            self.role = role
            self.slots = slots
            self.lease = lease
            self.version = version
        }
    }

    public init() {}

    /// Inserts (or revives) the process's row.
    public func register(_ registration: Registration, on connection: Connection) throws {
        try connection.execute(
            """
            INSERT INTO lethe.workers (id, role, host, pid, version, slots, lease_seconds)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (id) DO UPDATE
            SET last_heartbeat_at = now(), stopped_at = NULL, slots = EXCLUDED.slots,
                lease_seconds = EXCLUDED.lease_seconds
            """,
            [
                registration.id, registration.role, ProcessInfo.processInfo.hostName,
                Int(ProcessInfo.processInfo.processIdentifier), registration.version, registration.slots,
                registration.lease.seconds,
            ])
    }

    /// Refreshes the heartbeat of a process that holds no tasks (a coordinator).
    public func heartbeat(_ id: UUID, on connection: Connection) throws {
        try connection.execute("UPDATE lethe.workers SET last_heartbeat_at = now() WHERE id = $1", [id])
    }

    /// Marks the process stopped (a clean exit; a killed one just goes silent); a stopped
    /// worker throttles nothing.
    public func markStopped(_ id: UUID, on connection: Connection) throws {
        try connection.execute(
            """
            UPDATE lethe.workers SET stopped_at = now(), throttled_reasons = '{}', throttled_since = NULL,
                throttle_detail = NULL
            WHERE id = $1
            """, [id])
    }

    /// Records why the worker throttles retention (`reasons` empty: it does not). The start
    /// is `throttledFor` before the server's clock (no skew between hosts), kept while the
    /// throttle lasts.
    public func recordThrottle(
        _ id: UUID, reasons: [String], throttledFor: Duration?, detail: String, on connection: Connection
    ) throws {
        try connection.execute(
            """
            UPDATE lethe.workers
            SET throttled_reasons = $2::text[],
                throttled_since = CASE WHEN cardinality($2::text[]) = 0 THEN NULL
                    ELSE coalesce(throttled_since, now() - $3 * interval '1 millisecond') END,
                throttle_detail = CASE WHEN cardinality($2::text[]) = 0 THEN NULL ELSE nullif($4, '') END
            WHERE id = $1
            """, [id, reasons, (throttledFor ?? .zero).milliseconds, detail])
    }
}
