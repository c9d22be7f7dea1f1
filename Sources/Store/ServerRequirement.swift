import Postgres

/// The PostgreSQL server Lethe needs: 15 or later. Every command that connects checks it
/// (with `PQserverVersion`, no query) before any of Lethe's SQL runs.
public enum ServerRequirement {
    /// `PQserverVersion`'s form of the oldest supported server: 15.0.
    public static let minimumVersion = 150_000

    /// The refusal for a server reporting `serverVersion`, or nil when it is supported.
    public static func refusal(serverVersion: Int) -> ServerVersionError? {
        serverVersion >= minimumVersion ? nil : ServerVersionError(found: serverVersion)
    }

    /// Throws when `connection`'s server is older than `minimumVersion`.
    public static func check(_ connection: Connection) throws(ServerVersionError) {
        if let refusal = refusal(serverVersion: connection.serverVersion) { throw refusal }
    }

    /// 150018 → "15.18", 90624 → "9.6.24", as PostgreSQL numbers its releases.
    public static func text(_ version: Int) -> String {
        guard version > 0 else { return "unknown" }
        if version >= 100_000 { return "\(version / 10_000).\(version % 10_000)" }
        return "\(version / 10_000).\(version / 100 % 100).\(version % 100)"
    }
}

/// The server is older than Lethe supports. Exit status 2: the configuration points at it.
public struct ServerVersionError: Error, Equatable, CustomStringConvertible {
    /// `PQserverVersion` of the server (0 when it could not tell).
    public var found: Int

    public var description: String {
        "the database server is PostgreSQL \(ServerRequirement.text(found)); Lethe needs PostgreSQL "
            + "\(ServerRequirement.minimumVersion / 10_000) or later: upgrade the server or point --database-url "
            + "at one that is"
    }
}
