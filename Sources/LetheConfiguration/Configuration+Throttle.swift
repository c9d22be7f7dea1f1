import Foundation
import Retention
import Store
import Worker

/// Throttle settings (`throttle.*`, `retention.target_batch_duration`): when retention
/// workers pause for the database's health, and the batch duration they hold.
extension Configuration {
    /// What `throttle.max_replication_lag` and `throttle.max_transaction_age` accept besides 0 (off).
    static let throttleDurationRange: ClosedRange<Duration> = .seconds(1)...(.seconds(7 * 86_400))
    /// What `retention.target_batch_duration` accepts besides 0 (off: every batch is `batch_size`).
    static let targetBatchDurationRange: ClosedRange<Duration> = .milliseconds(10)...(.seconds(600))

    /// The settings; a `throttle.check_interval` of zero or a blank lag query is a
    /// configuration error naming the file (`path`), key and value.
    package func throttleSettings(path: String?) throws(UsageError) -> ThrottleSettings {
        var settings = ThrottleSettings()
        let file = "configuration file \(path ?? "(none)")"
        if let interval = duration("throttle.check_interval") {
            guard interval >= .milliseconds(100), interval <= .seconds(3600) else {
                throw UsageError(
                    "\(file): key throttle.check_interval has the value \"\(values["throttle.check_interval"] ?? "")\"; "
                        + "expected a duration from 100ms to 1h, \(DurationText.accepted)")
            }
            settings.checkInterval = interval
        }
        if let query = values["throttle.replication_lag_query"] {
            guard !query.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw UsageError(
                    "\(file): key throttle.replication_lag_query is empty; expected one SQL query returning at most "
                        + "one row of one numeric column, the replication lag in seconds")
            }
            settings.lagQuery = query
        }
        if let text = values["throttle.max_replication_lag"] { settings.limits.replicationLag = offOrDuration(text) }
        if let text = values["throttle.max_transaction_age"] { settings.limits.transactionAge = offOrDuration(text) }
        settings.limits.walBytesPerSecond = byteSize("throttle.max_wal_rate")
        if let waits = integer("throttle.max_lock_waits") { settings.limits.lockWaits = waits }
        if let floor = integer("throttle.floor_rate") { settings.floorRate = floor }
        if boolean("throttle.enabled") == false { settings.limits = .none }
        if let text = values["retention.target_batch_duration"] { settings.targetBatchDuration = offOrDuration(text) }
        return settings
    }

    /// nil for `0` (off), else the duration (checked on load).
    private func offOrDuration(_ text: String) -> Duration? {
        guard let value = DurationText.parse(text), value > .zero else { return nil }
        return value
    }
}
