import Retention

/// The machines' states as SQL: statements take the state an event enters, and the states it
/// may leave, from `Retention`'s state machines rather than from literals of their own.
enum StateSQL {
    /// The state as an SQL string literal, e.g. `'running'`.
    static func literal<State: RawRepresentable<String>>(_ state: State) -> String { "'\(state.rawValue)'" }

    /// `column = 'a'` for one state, `column IN ('a', 'b')` for several (in declaration order).
    static func isIn<State: RawRepresentable<String>>(_ column: String, _ states: [State]) -> String {
        let literals = states.map { literal($0) }
        return literals.count == 1 ? "\(column) = \(literals[0])" : "\(column) IN (\(literals.joined(separator: ", ")))"
    }

    /// `column NOT IN ('a', 'b')`.
    static func isNotIn<State: RawRepresentable<String>>(_ column: String, _ states: [State]) -> String {
        "\(column) NOT IN (\(states.map { literal($0) }.joined(separator: ", ")))"
    }
}

extension StateMachineEvent {
    /// The state the event enters, as an SQL literal.
    var targetSQL: String { StateSQL.literal(target) }

    /// The condition that `column` holds a state the event may leave.
    func leaves(_ column: String) -> String { StateSQL.isIn(column, orderedSources) }

    /// The same condition written as the states it may not leave (`column NOT IN (…)`).
    func leavesAllBut(_ column: String) -> String {
        StateSQL.isNotIn(column, State.allCases.filter { !sources.contains($0) })
    }
}
