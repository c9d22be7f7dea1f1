import Retention

extension Configuration {
    /// What `coordinator.backlog_interval` accepts besides 0: at least 10 s (each refresh counts
    /// every account's expired rows), at most a day.
    static let backlogIntervalRange: ClosedRange<Duration> = .seconds(10)...(.seconds(86_400))

    /// How often the leader refreshes `lethe.retention_backlog_snapshot`: 5 minutes unless
    /// `coordinator.backlog_interval` says otherwise; nil when it is 0 (off).
    package var backlogInterval: Duration? {
        guard let text = values["coordinator.backlog_interval"] else { return .seconds(300) }
        guard let value = DurationText.parse(text), value > .zero else { return nil }
        return value
    }
}
