import Foundation
import Postgres
import Retention

/// The two cheap statements behind `lethe run`'s progress line on a terminal: rows one
/// worker deleted since a batch id (a range scan of the newest `deletion_records` on its
/// primary key, so each call reads only the batches since the last), and the queue's
/// backlog (the unfinished tasks, through the partial index of unfinished tasks).
public struct RunProgressQueries: Sendable {
    public init() {}

    /// The newest batch id in `lethe.deletion_records` (0 when empty): where counting starts.
    public func lastDeletion(on connection: Connection) throws -> Int64 {
        try connection.query("SELECT coalesce(max(id), 0) FROM lethe.deletion_records")[0].decode(Int64.self, at: 0)
    }

    /// Rows (blobs included) `worker` deleted in batches after `after`, and the newest batch
    /// id seen (for the next call). A batch that commits after a newer one was seen is not
    /// counted: a figure for the eye, not an audit (that is `lethe.deletion_log`).
    public func deleted(
        by worker: UUID, after: Int64, on connection: Connection
    ) throws -> (
        rows: Int, last: Int64
    ) {
        try connection.query(
            """
            SELECT coalesce(sum(total_rows + blob_rows) FILTER (WHERE worker_id = $2), 0)::bigint,
                   coalesce(max(id), $1)
            FROM lethe.deletion_records WHERE id > $1
            """, [after, worker]
        )[0].decode((Int, Int64).self)
    }

    /// Tasks due and not yet claimed, and tasks running, across every worker.
    public func backlog(on connection: Connection) throws -> (queued: Int, running: Int) {
        try connection.query(
            """
            SELECT count(*) FILTER (WHERE \(StateSQL.isIn("state", [TaskState.available, .failed])) AND run_at <= now())::int,
                   count(*) FILTER (WHERE state = \(StateSQL.literal(TaskState.running)))::int
            FROM lethe.tasks WHERE \(StateSQL.isIn("state", TaskState.unfinished))
            """
        )[0].decode((Int, Int).self)
    }
}
