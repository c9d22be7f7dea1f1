/// Every metric Lethe exports. docs/metrics.md documents each one; a test keeps the two equal.
extension LetheMetric {
    /// Short operations: a claim, a batch (5 ms … 60 s).
    static let shortBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
    /// A task's budget slice (10 ms … 30 min).
    static let taskBuckets: [Double] = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800]

    // Workers.
    public static let tasksClaimed = LetheMetric(
        "lethe_tasks_claimed_total", .counter, labels: ["kind"], help: "Tasks claimed by this process's workers.")
    public static let tasksCompleted = LetheMetric(
        "lethe_tasks_completed_total", .counter, labels: ["kind"], help: "Tasks whose handler finished the work.")
    public static let tasksYielded = LetheMetric(
        "lethe_tasks_yielded_total", .counter, labels: ["kind"],
        help: "Task slices that used their budget with work left (the task went to the back of the queue).")
    public static let tasksFailed = LetheMetric(
        "lethe_tasks_failed_total", .counter, labels: ["kind"], help: "Task attempts that failed and will be retried.")
    public static let tasksDead = LetheMetric(
        "lethe_tasks_dead_total", .counter, labels: ["kind"],
        help: "Tasks that failed for good (permanent failure or attempts exhausted in this process).")
    public static let tasksReleased = LetheMetric(
        "lethe_tasks_released_total", .counter, labels: ["kind"],
        help: "Tasks given back to the queue untouched or unfinished at shutdown.")
    public static let claimDuration = LetheMetric(
        "lethe_claim_duration_seconds", .histogram,
        help: "Time one claim statement took (claiming a batch and acknowledging finished tasks).",
        buckets: shortBuckets)
    public static let taskDuration = LetheMetric(
        "lethe_task_duration_seconds", .histogram, labels: ["kind"],
        help: "Time a handler ran one task slice, by task kind.", buckets: taskBuckets)
    public static let batchDuration = LetheMetric(
        "lethe_batch_duration_seconds", .histogram, labels: ["entity_type"],
        help: "Time one retention or orphan-GC deletion batch (one transaction) took.", buckets: shortBuckets)
    public static let rowsDeleted = LetheMetric(
        "lethe_rows_deleted_total", .counter, labels: ["entity_type"],
        help: "Rows deleted (children included) by retention, orphan GC (blob store name) and archive deletion.")
    public static let archivedBytes = LetheMetric(
        "lethe_archived_bytes_total", .counter,
        help: "Bytes of encrypted archive files packed (a file holds every entity type of its job: no type label).")
    public static let uploads = LetheMetric(
        "lethe_uploads_total", .counter, labels: ["site_kind", "outcome"],
        help: "Archive file uploads to backup sites, by site kind (sftp, file) and outcome (success, failure).")

    // Coordinators and the queue.
    public static let leader = LetheMetric(
        "lethe_leader", .gauge, help: "1 while this coordinator process is the leader, else 0.")
    public static let queueTasks = LetheMetric(
        "lethe_queue_tasks", .gauge, labels: ["kind", "state"],
        help: "Tasks in lethe.tasks by kind and state (lethe.queue_summary, refreshed at most every 5 s on scrape).")
    public static let queueDueTasks = LetheMetric(
        "lethe_queue_due_tasks", .gauge, labels: ["kind"],
        help: "Tasks available or failed whose run_at has come (what workers can claim now).")
    public static let queueOldestDueSeconds = LetheMetric(
        "lethe_queue_oldest_due_seconds", .gauge, labels: ["kind"],
        help: "How long the oldest due task of each kind has waited (0 when none is due).")
    public static let queueScrapeErrors = LetheMetric(
        "lethe_queue_summary_errors_total", .counter,
        help: "Refreshes of the queue gauges that failed (the gauges keep their last values).")

    // Throttling (issue 17): workers pause retention batches while the database is unwell.
    public static let throttled = LetheMetric(
        "lethe_throttled", .gauge, labels: ["reason"],
        help:
            "1 while this worker process pauses (or, with throttle.floor_rate, slows) retention batches for the reason (a signal over its throttle.* limit), else 0."
    )
    public static let throttledWaits = LetheMetric(
        "lethe_throttled_waits_total", .counter, labels: ["reason"],
        help:
            "Retention batches held back (paused, or paced to throttle.floor_rate) because a health signal was over its limit."
    )
    public static let batchSize = LetheMetric(
        "lethe_batch_size", .gauge, labels: ["entity_type"],
        help: "Size (root rows) of the last retention batch asked for, as the adaptive batch size set it.")

    /// The catalog, in the order docs/metrics.md lists it.
    public static let all: [LetheMetric] = [
        tasksClaimed, tasksCompleted, tasksYielded, tasksFailed, tasksDead, tasksReleased, claimDuration,
        taskDuration, batchDuration, rowsDeleted, archivedBytes, uploads, leader, queueTasks, queueDueTasks,
        queueOldestDueSeconds, queueScrapeErrors, throttled, throttledWaits, batchSize,
    ]
}
