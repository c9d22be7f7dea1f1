/// The logging metadata keys Lethe uses, in one place so that log queries stay stable.
public enum LogKey {
    public static let migration = "lethe.migration"
    public static let account = "lethe.account"
    public static let entityType = "lethe.entity_type"
    public static let task = "lethe.task"
    public static let taskKind = "lethe.task_kind"
    public static let worker = "lethe.worker"
    public static let attempt = "lethe.attempt"
    public static let archive = "lethe.archive"
    public static let site = "lethe.site"
    public static let error = "lethe.error"
    /// How a task slice ended: succeeded, yielded, failed, dead or released.
    public static let outcome = "lethe.outcome"
    /// Rows a task deleted.
    public static let rows = "lethe.rows"
    /// Bytes of archive files a task packed.
    public static let bytes = "lethe.bytes"
    /// Files a task uploaded (and failed to upload).
    public static let uploads = "lethe.uploads"
    public static let failedUploads = "lethe.failed_uploads"
    /// How long a task slice ran, in milliseconds.
    public static let durationMilliseconds = "lethe.duration_ms"
}
