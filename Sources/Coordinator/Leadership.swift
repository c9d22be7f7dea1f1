import Foundation
import Postgres
import Store

/// Leader election on the coordinator's own session: the session advisory lock decides
/// (PostgreSQL releases it the moment the session ends), `lethe.leader` records it.
struct Leadership: Sendable {
    /// The session advisory lock the leader holds ("lethlead" in ASCII).
    static let lockKey: Int64 = 0x6c65_7468_6c65_6164

    let process: UUID

    /// Keeps leadership (the session that won the lock is still this one) or tries to take
    /// it. The lock belongs to a session: a new session (after a reconnect) must win it again.
    func elect(leaderSession: UUID?, on connection: Connection) throws -> (leading: Bool, became: Bool) {
        if connection.sessionID == leaderSession { return (true, false) }
        let won = try connection.tryAdvisoryLock(Self.lockKey)
        return (won, won)
    }

    /// Records this process in `lethe.leader`, once per tick while it leads.
    func record(on connection: Connection) throws {
        try LeaderRecord().record(process, on: connection)
    }

    /// Gives leadership up: the record goes, then the lock.
    func stepDown(on connection: Connection) throws {
        try LeaderRecord().remove(process, on: connection)
        try connection.advisoryUnlock(Self.lockKey)
    }
}
