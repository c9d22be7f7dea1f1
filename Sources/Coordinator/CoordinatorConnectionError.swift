/// The coordinator's database connection cannot carry its session state.
public enum CoordinatorConnectionError: Error, CustomStringConvertible {
    /// `database.url` reaches PostgreSQL through a connection pooler.
    case throughPooler

    public var description: String {
        switch self {
        case .throughPooler:
            "the coordinator's database.url goes through a connection pooler (such as PgBouncer): the coordinator "
                + "holds the leader lock as a session advisory lock and needs a direct connection to PostgreSQL; "
                + "point its database.url at PostgreSQL itself (workers with --poll-only may use the pooler)"
        }
    }
}
