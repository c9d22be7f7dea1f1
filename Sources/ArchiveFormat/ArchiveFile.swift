import Foundation

/// An archive file to read, and what its name says (nil when it does not follow
/// `ArchiveLayout.fileName`).
public struct ArchiveFile: Sendable {
    public var path: String
    public var account: String?
    public var job: String?
    public var part: Int?
    /// The job's packing generation (`_gN` in the name; 1 without it).
    public var generation: Int?

    public init(path: String) {
        self.path = path
        let name = URL(fileURLWithPath: path).lastPathComponent
        let pattern =
            #/backup_(.+)_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})_([0-9]{14})(?:_g([0-9]+))?(?:_part([0-9]+))?\.zip/#
        if let match = name.wholeMatch(of: pattern) {
            account = String(match.1).removingPercentEncoding
            job = String(match.2)
            generation = match.4.flatMap { Int($0) } ?? 1
            part = match.5.flatMap { Int($0) } ?? 1
        }
    }

    /// The file's name, without its directory: what the backup log records.
    public var name: String { URL(fileURLWithPath: path).lastPathComponent }

    /// The SHA-256 of the whole file (lower-case hex), as the backup log records it.
    public func sha256() throws -> String { try ArchivePartWriter.fileDigest(path) }
}
