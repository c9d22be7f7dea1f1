import Foundation
import Postgres

/// `lethe.noop_runs`: the noop task's side effect, one row per run, which tests and the
/// queue benchmark count.
public enum NoopRuns {
    /// Records one run of a noop task.
    public static func record(task: Int64, attempt: Int, worker: UUID, on connection: Connection) throws {
        try connection.execute(
            "INSERT INTO lethe.noop_runs (task_id, attempt, worker_id) VALUES ($1, $2, $3)", [task, attempt, worker])
    }
}
