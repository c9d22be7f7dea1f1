import ArchiveFormat
import BackupSites
import Foundation
import SFTP
import Store

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The spool is a cache: a worker that lacks a job's files (another worker packed them, or
/// its spool was lost) fetches them back from a site that holds them.
extension ArchiveHandler {
    /// For each of `missing`, the sites that hold a verified copy (`done`), in site order;
    /// nil when some file is held by none.
    static func holders(
        of missing: [ArchiveFileRecord], sites: [Site], done: Set<[Int64]>
    )
        -> [(file: ArchiveFileRecord, sites: [Site])]?
    {
        var out: [(file: ArchiveFileRecord, sites: [Site])] = []
        for file in missing {
            let holding = sites.filter { done.contains([file.id, $0.record.id]) }
            if holding.isEmpty { return nil }
            out.append((file, holding))
        }
        return out
    }

    /// On a dedicated thread: the files this worker's spool lacks or holds otherwise than
    /// packing recorded. A copy of another size or SHA-256 (a damaged disk, a stale file left
    /// in a reused spool directory) is removed and counts as missing, so it is fetched back
    /// or packed again and never uploaded. Returns the copies removed too, for the log.
    static func checkSpool(
        _ files: [ArchiveFileRecord], in directory: String
    ) throws -> (
        missing: [ArchiveFileRecord], removed: [String]
    ) {
        var missing: [ArchiveFileRecord] = []
        var removed: [String] = []
        for file in files {
            let path = "\(directory)/\(file.name)"
            var status = stat()
            guard stat(path, &status) == 0 else {
                missing.append(file)
                continue
            }
            var why: String?
            if let size = file.size, Int64(status.st_size) != size {
                why = "it has \(status.st_size) bytes, the backup log records \(size)"
            } else if let expected = file.sha256 {
                let hash = try ArchiveFile(path: path).sha256()
                if hash != expected { why = "its SHA-256 is \(hash), the backup log records \(expected)" }
            }
            guard let why else { continue }
            guard unlink(path) == 0 else {
                throw ArchiveJobError(
                    "the spool copy \(path) differs from what was packed (\(why)) and removing it failed: "
                        + String(cString: strerror(errno)))
            }
            missing.append(file)
            removed.append("removed the spool copy of \(file.name): \(why)")
        }
        return (missing, removed)
    }

    /// On a dedicated thread: downloads each file from the first of its sites whose copy has
    /// the recorded size and SHA-256 into `directory` (a temporary name, fsynced, then
    /// renamed). A copy that differs is discarded and the next site tried. Returns what was
    /// fetched from where and the copies refused, for the log; throws naming every site's
    /// failure when no copy of a file fits.
    static func fetch(
        _ wanted: [(file: ArchiveFileRecord, sites: [Site])], into directory: String, timeout: Duration
    ) throws -> (fetched: [String], refused: [String]) {
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var connections: [Int64: any BackupSite] = [:]
        defer { for connection in connections.values { connection.close() } }
        var fetched: [String] = []
        var refused: [String] = []
        for (file, sites) in wanted {
            var failures: [String] = []
            var done = false
            for site in sites where !done {
                let temporary = "\(directory)/\(SFTPSession.temporaryName(for: file.name))"
                do {
                    let connection =
                        try connections[site.record.id]
                        ?? BackupSites.open(site.url, credentials: site.credentials, timeout: timeout)
                    connections[site.record.id] = connection
                    // At most the recorded size: an endless or oversized copy never fills the spool.
                    guard let expected = file.size else {
                        throw ArchiveJobError("the backup log records no size for \(file.name): cannot verify a copy")
                    }
                    let size = try connection.download(file.name, to: temporary, atMost: expected)
                    try verify(temporary, size: size, as: file)
                    try rename(temporary, into: "\(directory)/\(file.name)")
                    fetched.append("\(file.name) from \(site.url)")
                    done = true
                } catch {
                    _ = unlink(temporary)
                    connections.removeValue(forKey: site.record.id)?.close()
                    failures.append("\(site.url): \(error)")
                    refused.append("refused the copy of \(file.name) on \(site.url): \(error)")
                }
            }
            if !done {
                throw ArchiveJobError(
                    "archive file \(file.name) is missing from the spool directory \(directory) of this worker "
                        + "and no backup site gave a copy as recorded: \(failures.joined(separator: "; "))")
            }
        }
        return (fetched, refused)
    }

    /// Checks a downloaded copy against the backup log's size and SHA-256, then fsyncs it.
    private static func verify(_ path: String, size: Int64, as file: ArchiveFileRecord) throws {
        guard let expectedSize = file.size, let expectedHash = file.sha256 else {
            throw ArchiveJobError("the backup log records no size or SHA-256 for \(file.name): cannot verify a copy")
        }
        guard size == expectedSize else {
            throw ArchiveJobError("the copy has \(size) bytes, the backup log records \(expectedSize)")
        }
        let hash = try ArchiveFile(path: path).sha256()
        guard hash == expectedHash else {
            throw ArchiveJobError("the copy's SHA-256 is \(hash), the backup log records \(expectedHash)")
        }
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else {
            throw ArchiveJobError("opening \(path) failed: \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else {
            throw ArchiveJobError("fsync of \(path) failed: \(String(cString: strerror(errno)))")
        }
    }

    /// Gives the verified copy its spool name. Wraps `rename`.
    private static func rename(_ temporary: String, into final: String) throws {
        guard posixRename(temporary, final) == 0 else {
            throw ArchiveJobError("renaming \(temporary) to \(final) failed: \(String(cString: strerror(errno)))")
        }
    }
}

/// Wraps `rename`, under a name that `ArchiveHandler.rename(_:into:)` does not shadow.
private func posixRename(_ from: String, _ to: String) -> Int32 { rename(from, to) }
