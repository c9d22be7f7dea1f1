import LetheMetrics
import Postgres
import Store
import Synchronization

/// The queue-depth gauges (`lethe_queue_*`), read from `lethe.queue_summary` on a
/// connection of their own when `/metrics` is scraped, at most once per `interval`.
final class QueueGauges: Sendable {
    private let thread: ConnectionThread
    private let interval: Duration
    private struct State {
        var refreshed: ContinuousClock.Instant?
        /// The (kind, state) pairs set last time: a pair that vanished is set to 0.
        var pairs: Set<[String]> = []
        var kinds: Set<String> = []
    }
    private let state = Mutex(State())

    init(conninfo: String, interval: Duration = .seconds(5)) {
        thread = ConnectionThread(
            conninfo: conninfo, name: "lethe-metrics", applicationName: "lethe metrics",
            defaults: HealthChecks.probeDefaults)
        self.interval = interval
    }

    /// Refreshes the gauges unless they were refreshed within `interval`.
    func refreshIfDue() async {
        let isDue = state.withLock { state in
            guard let last = state.refreshed, ContinuousClock.now - last < interval else {
                state.refreshed = .now
                return true
            }
            return false
        }
        guard isDue else { return }
        let rows: [HealthQueries.QueueDepth]
        do {
            rows = try await thread.run { try HealthQueries.queueDepth(on: $0) }
        } catch {
            LetheMetric.queueScrapeErrors.increment()
            return
        }
        var due: [String: Int] = [:]
        var oldest: [String: Double] = [:]
        for row in rows {
            LetheMetric.queueTasks.set(Double(row.tasks), row.kind, row.state)
            due[row.kind, default: 0] += row.due
            oldest[row.kind] = max(oldest[row.kind] ?? 0, row.oldestDueSeconds)
        }
        let (pairs, kinds) = (Set(rows.map { [$0.kind, $0.state] }), Set(rows.map(\.kind)))
        let (gonePairs, goneKinds) = state.withLock { state in
            defer { (state.pairs, state.kinds) = (pairs, kinds) }
            return (state.pairs.subtracting(pairs), state.kinds.subtracting(kinds))
        }
        for pair in gonePairs { LetheMetric.queueTasks.set(0, pair[0], pair[1]) }
        for kind in kinds.union(goneKinds) {
            LetheMetric.queueDueTasks.set(Double(due[kind] ?? 0), kind)
            LetheMetric.queueOldestDueSeconds.set(oldest[kind] ?? 0, kind)
        }
    }

    func close() async { await thread.shutdown() }
}
