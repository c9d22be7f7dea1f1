/// Bad usage or bad configuration: exit status 2, with a message that names the bad
/// value and says what would be accepted.
public struct UsageError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
