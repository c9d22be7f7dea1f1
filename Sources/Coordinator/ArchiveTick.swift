import Postgres
import Retention
import Store

/// The leader's archive duties on each tick: start the daily archive jobs that are due and
/// enqueue an `archive` task for each account with a job to wake (cheap: index scans).
public final class ArchiveTick: SchedulerTick {
    public let name = TaskKind.archive.rawValue
    private let schedule: ArchiveSchedule

    public init(schedule: ArchiveSchedule) { self.schedule = schedule }

    public func tick(on connection: Connection) throws -> Int {
        try schedule.tick(on: connection).enqueued
    }
}
