/// An archive job step that cannot go on; the message is safe to log (no keys, no rows).
struct ArchiveJobError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
