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
}
