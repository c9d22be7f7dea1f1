/// The states of a row in `lethe.tasks` (see docs/queue.md for the machine).
///
/// `failed` means "the last attempt failed and a retry is scheduled at `run_at`";
/// `dead` means "out of attempts, or failed permanently": it needs an operator.
public enum TaskState: String, Sendable, CaseIterable, Codable {
    case available, running, succeeded, failed, dead, cancelled

    /// Unfinished states: a (kind, account, entity type) has at most one task in them.
    public static let unfinished: [TaskState] = [.available, .running, .failed]

    /// True once nothing more will happen to the task unless an operator retries it.
    public var isFinished: Bool { !TaskState.unfinished.contains(self) }
}
