/// The kind of a task: which handler runs it. Stored as text in `lethe.tasks.kind` (and
/// schedules); any kind a handler registers for can be enqueued, so this is an open set
/// with the kinds Lethe itself runs named here.
public struct TaskKind: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { rawValue = value }
    public var description: String { rawValue }

    /// Deletes expired rows of one (account, entity type).
    public static let retention: TaskKind = "retention"
    /// Takes an account's archive jobs a step further.
    public static let archive: TaskKind = "archive"
    /// Deletes blobs nothing references any more.
    public static let orphanGC: TaskKind = "orphan_gc"
    /// Does nothing (tests and benchmarks of the queue).
    public static let noop: TaskKind = "noop"

    /// Every kind this build of Lethe runs, in the order `lethe task enqueue --help` lists them.
    public static let builtIn: [TaskKind] = [.noop, .retention, .orphanGC, .archive]
}
