import Retention
import Store

extension Configuration {
    /// `retention.lock_timeout` (5s) and `retention.statement_timeout` (5m): the bounds of
    /// every deleting transaction. Zero, or more than PostgreSQL accepts (about 24 days), is
    /// a configuration error naming the key and the value, and the file (`path`) it came from.
    package func deletionTimeouts(path: String?) throws(UsageError) -> DeletionTimeouts {
        var timeouts = DeletionTimeouts.standard
        for (key, field) in [
            ("retention.lock_timeout", \DeletionTimeouts.lock), ("retention.statement_timeout", \.statement),
        ] {
            guard let value = duration(key) else { continue }
            guard value > .zero, value <= DeletionTimeouts.maximum else {
                throw UsageError(
                    "configuration file \(path ?? "(none)"): key \(key) has the value "
                        + "\"\(values[key] ?? "")\"; expected a positive duration of at most "
                        + "\(DurationText.format(DeletionTimeouts.maximum)): \(DurationText.accepted)")
            }
            timeouts[keyPath: field] = value
        }
        return timeouts
    }
}
