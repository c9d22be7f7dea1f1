import Foundation
import Postgres
import Retention
import Store
import Synchronization

/// The leader's retention duties on each tick: enqueue due retention and orphan GC tasks
/// (cheap: driven by the next-run index), and every `noticeInterval` announce upcoming
/// deletions (a scan of the application's tables, so less often).
public final class RetentionTick: SchedulerTick {
    public let name = TaskKind.retention.rawValue
    private let schedule: RetentionSchedule
    private let noticeInterval: Duration
    private let lastNotice = Mutex<ContinuousClock.Instant?>(nil)

    public init(schedule: RetentionSchedule, noticeInterval: Duration) {
        self.schedule = schedule
        self.noticeInterval = noticeInterval
    }

    public func tick(on connection: Connection) throws -> Int {
        let enqueued = try schedule.enqueueDue(on: connection).enqueued
        let now = ContinuousClock.now
        let due = lastNotice.withLock { last in last.map { now - $0 >= noticeInterval } ?? true }
        if due {
            try schedule.announceUpcoming(on: connection)
            lastNotice.withLock { $0 = now }
        }
        return enqueued
    }
}
