/// What happens to a task (a row of `lethe.tasks`); with `TaskState`, the task state
/// machine of docs/queue.md.
///
/// Where a statement picks between two events by the attempts left (a failed attempt, a
/// rescue), each outcome is its own event.
public enum TaskEvent: String, Sendable, CaseIterable, StateMachineEvent {
    /// A worker takes a due task.
    case claim
    /// The handler finished the task.
    case succeed
    /// The handler spent its budget with work left: due again, the attempt not counted.
    case yield
    /// The worker shut down before the handler finished: due again, the attempt not counted.
    case release
    /// The attempt failed and attempts are left: retried after a backoff.
    case fail
    /// The attempt failed and none are left.
    case failLastAttempt
    /// The handler failed permanently: no retry helps.
    case failPermanently
    /// The lease ran out (the worker died) and attempts are left: due again now.
    case rescue
    /// The lease ran out on the last attempt.
    case rescueLastAttempt
    /// An operator runs the task again (`lethe task retry`).
    case retry
    /// An operator cancels the task (`lethe task cancel`).
    case cancel

    public var sources: Set<TaskState> {
        switch self {
        case .claim: [.available, .failed]
        case .succeed, .yield, .release, .fail, .failLastAttempt, .failPermanently, .rescue, .rescueLastAttempt:
            [.running]
        case .retry: [.failed, .dead, .cancelled]
        case .cancel: Set(TaskState.unfinished)
        }
    }

    public var target: TaskState {
        switch self {
        case .claim: .running
        case .succeed: .succeeded
        case .yield, .release, .retry: .available
        case .fail, .rescue: .failed
        case .failLastAttempt, .failPermanently, .rescueLastAttempt: .dead
        case .cancel: .cancelled
        }
    }
}

extension TaskState {
    /// The state after `event`, or nil when the event is not allowed in this state.
    public func after(_ event: TaskEvent) -> TaskState? { event.transition(from: self) }
}
