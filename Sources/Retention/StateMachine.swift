/// An event of a state machine: the states it may leave and the one it enters. The
/// machines (`TaskEvent`, `ArchiveJobEvent`, `ArchiveFileEvent`) are pure; Store's
/// statements take their target and source states from them.
public protocol StateMachineEvent: Sendable {
    associatedtype State: RawRepresentable<String>, CaseIterable, Hashable, Sendable

    /// The states the event may leave.
    var sources: Set<State> { get }
    /// The state the event enters.
    var target: State { get }
}

extension StateMachineEvent {
    /// The state after the event, or nil when the event is not allowed in `state`.
    public func transition(from state: State) -> State? { sources.contains(state) ? target : nil }

    /// `sources` in the order the states are declared.
    public var orderedSources: [State] { State.allCases.filter(sources.contains) }
}
