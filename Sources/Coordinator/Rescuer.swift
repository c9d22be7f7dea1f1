import Postgres
import Store

/// Fails running tasks whose lease ran out (their worker stopped heartbeating), so they run
/// again elsewhere, every `interval` while this coordinator leads.
///
/// Workers rescue too (`worker.rescue_interval`, in `WorkerPool`'s heartbeat loop): a
/// `lethe worker` may run with no coordinator at all, and operators tune the two intervals
/// apart. Both run the same statement (`TaskQueue.rescueExpired`, one `UPDATE … SKIP
/// LOCKED`), so running it from both places rescues each task once.
struct Rescuer: Sendable {
    let queue: TaskQueue
    let interval: Duration

    /// Rescues up to one batch; returns how many tasks it rescued.
    func run(on connection: Connection) throws -> Int { try queue.rescueExpired(on: connection).count }
}
