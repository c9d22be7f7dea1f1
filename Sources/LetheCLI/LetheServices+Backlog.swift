import Coordinator
import Foundation
import LetheConfiguration
import Store

extension LetheServices {
    /// A coordinator's id and its backlog snapshot duty (`coordinator.backlog_interval`; the
    /// refresh records the id as its refresher).
    static func backlogRefresher(_ context: CommandContext) -> (UUID, BacklogRefresher) {
        let id = UUID()
        let snapshot = context.configuration.backlogInterval.map { BacklogSnapshot(interval: $0) }
        return (
            id, BacklogRefresher(conninfo: context.conninfo, snapshot: snapshot, process: id, logger: context.logger)
        )
    }
}
