import Foundation
import Postgres

/// The row of `lethe.leader`: which process leads, for people (`lethe status`). The
/// leader's advisory lock is the truth; the row follows it.
public struct LeaderRecord: Sendable {
    public init() {}

    /// Records `process` (on this host, with this pid) as the leader; keeps `elected_at`
    /// while the same process goes on leading.
    public func record(
        _ process: UUID, host: String = ProcessInfo.processInfo.hostName,
        pid: Int = Int(ProcessInfo.processInfo.processIdentifier), on connection: Connection
    ) throws {
        try connection.execute(
            """
            INSERT INTO lethe.leader (singleton, process_id, host, pid)
            VALUES (true, $1, $2, $3)
            ON CONFLICT (singleton) DO UPDATE
            SET process_id = EXCLUDED.process_id, host = EXCLUDED.host, pid = EXCLUDED.pid,
                elected_at = CASE WHEN lethe.leader.process_id = EXCLUDED.process_id
                                  THEN lethe.leader.elected_at ELSE now() END,
                last_seen_at = now()
            """,
            [process, host, pid])
    }

    /// Removes the row if `process` holds it (a leader stepping down).
    public func remove(_ process: UUID, on connection: Connection) throws {
        try connection.execute("DELETE FROM lethe.leader WHERE process_id = $1", [process])
    }
}
