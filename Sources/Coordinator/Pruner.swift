import Postgres
import Store

/// Deletes finished tasks once they are old enough, every `interval` while this
/// coordinator leads.
struct Pruner: Sendable {
    let queue: TaskQueue
    let interval: Duration
    /// How long succeeded and cancelled tasks are kept.
    let keepFinished: Duration
    /// How long dead tasks are kept.
    let keepDead: Duration
    /// Rows per statement.
    let batch: Int

    /// Returns how many tasks it deleted.
    func run(on connection: Connection) throws -> Int {
        try queue.prune(keepFinished: keepFinished, keepDead: keepDead, batch: batch, on: connection)
    }
}
