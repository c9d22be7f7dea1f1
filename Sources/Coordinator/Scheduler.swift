import Postgres
import Store

/// Work the leader does on every tick, besides recurring schedules: the retention
/// scheduler plugs in here. Returns how many tasks it enqueued.
public protocol SchedulerTick: Sendable {
    var name: String { get }
    func tick(on connection: Connection) throws -> Int
}

/// Enqueues due work on every tick while this coordinator leads: recurring schedules, then
/// each `SchedulerTick` (retention, archive, registry).
struct Scheduler: Sendable {
    let queue: TaskQueue
    let ticks: [any SchedulerTick]

    /// Runs every part; a failing part is handed to `failed` (with its name) and the others
    /// still run. Returns how many tasks were enqueued.
    func run(on connection: Connection, failed: (String, any Error) -> Void) -> Int {
        var scheduled = 0
        do { scheduled += try queue.enqueueDueSchedules(on: connection).enqueued } catch { failed("schedules", error) }
        for tick in ticks {
            do { scheduled += try tick.tick(on: connection) } catch { failed(tick.name, error) }
        }
        return scheduled
    }
}
