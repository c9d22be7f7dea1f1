import Foundation
import SFTP

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A backup site in a local directory (a mounted disk or network file system), with the same
/// discipline as SFTP: a temporary `O_EXCL` file, fsync, a rename that never replaces, a
/// directory fsync and a size check.
final class LocalDirectorySite: BackupSite {
    let url: BackupSiteURL
    private var directory: String { url.path }

    init(url: BackupSiteURL) throws(BackupSiteError) {
        precondition(url.scheme == .file, "LocalDirectorySite needs a file:// URL")
        self.url = url
        var info = stat()
        guard stat(url.path, &info) == 0 else { throw Self.error("stat", url.path) }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw BackupSiteError(.configuration, "backup directory \(url.path) is not a directory")
        }
    }

    func upload(localFile: String, name: String) throws -> Int64 {
        try validateName(name, site: url)
        let final = path(name)
        let source = try Descriptor(localFile, O_RDONLY)
        let expected = try source.size()
        if let existing = try size(atPath: final) { return try settle(final, existing: existing, expected: expected) }

        let temporary = path(SFTPSession.temporaryName(for: name))
        do {
            try copy(source, toNew: temporary, expected: expected)
            if try !link(temporary, to: final) {
                guard let existing = try size(atPath: final) else { throw Self.error("link", final) }
                _ = unlink(temporary)
                return try settle(final, existing: existing, expected: expected)
            }
            _ = unlink(temporary)
            try syncDirectory()
        } catch {
            _ = unlink(temporary)
            throw error
        }
        guard let stored = try size(atPath: final), stored == expected else {
            throw BackupSiteError(.sizeMismatch, "\(final) does not have the \(expected) bytes of \(localFile)")
        }
        return stored
    }

    func size(of name: String) throws -> Int64? {
        try validateName(name, site: url)
        return try size(atPath: path(name))
    }

    func remove(_ name: String) throws {
        try validateName(name, site: url)
        let target = path(name)
        if unlink(target) != 0 {
            if errno == ENOENT { return }
            throw Self.error("unlink", target)
        }
        try syncDirectory()
    }

    func download(_ name: String, to localPath: String, atMost: Int64) throws -> Int64 {
        try validateName(name, site: url)
        let source = try Descriptor(path(name), O_RDONLY)
        let size = try source.size()
        guard size <= atMost else {
            throw BackupSiteError(.sizeMismatch, "\(path(name)) holds \(size) bytes, more than the \(atMost) expected")
        }
        do {
            try copy(source, toNew: localPath, expected: size)
        } catch {
            _ = unlink(localPath)
            throw error
        }
        return size
    }

    func removeAbandonedUploads(olderThan age: Duration) throws -> [String] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw BackupSiteError(.io, "listing \(directory) failed: \(error.localizedDescription)")
        }
        let entries = names.filter(isTemporaryName).compactMap { name -> SiteEntry? in
            // lstat: a symbolic link is not a regular file.
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path(name)) else { return nil }
            let modified = (attributes[.modificationDate] as? Date).map { Int64($0.timeIntervalSince1970) }
            return SiteEntry(
                name: name, modified: modified, isRegularFile: attributes[.type] as? FileAttributeType == .typeRegular)
        }
        let removed = abandonedUploads(entries, olderThan: age, now: Int64(time(nil))).filter {
            unlink(path($0)) == 0
        }
        if !removed.isEmpty { try syncDirectory() }
        return removed
    }

    func close() {}

    private func path(_ name: String) -> String { directory == "/" ? "/\(name)" : "\(directory)/\(name)" }

    /// Creates `temporary` with `O_EXCL` (a site's temporary name, or a local file a download
    /// writes), copies `source` into it in 1 MiB chunks and fsyncs it.
    private func copy(_ source: Descriptor, toNew temporary: String, expected: Int64) throws(BackupSiteError) {
        let target = try Descriptor(temporary, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = try source.read(into: buffer)
            if count == 0 { break }
            try target.write(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
        try target.sync()
        let written = try target.size()
        guard written == expected else {
            throw BackupSiteError(.sizeMismatch, "\(temporary) has \(written) bytes, \(source.path) has \(expected)")
        }
        try target.close()
    }

    /// Gives `temporary` the name `final` unless that exists: `link` fails with EEXIST where
    /// `rename` would replace. Returns false when `final` exists. File systems without hard
    /// links fall back to a check and `rename`, which can race with another writer.
    private func link(_ temporary: String, to final: String) throws(BackupSiteError) -> Bool {
        if posixLink(temporary, final) == 0 { return true }
        switch errno {
        case EEXIST: return false
        case EPERM, ENOTSUP, EOPNOTSUPP, EXDEV, EMLINK:
            if try size(atPath: final) != nil { return false }
            guard rename(temporary, final) == 0 else { throw Self.error("rename", final) }
            return true
        default: throw Self.error("link", final)
        }
    }

    /// Makes the new name durable. Wraps `fsync` of the directory.
    private func syncDirectory() throws(BackupSiteError) {
        let handle = try Descriptor(directory, O_RDONLY | O_DIRECTORY)
        try handle.sync()
        try handle.close()
    }

    /// The size of `path`, nil when it does not exist. Wraps `stat`.
    private func size(atPath path: String) throws(BackupSiteError) -> Int64? {
        var info = stat()
        if stat(path, &info) == 0 { return Int64(info.st_size) }
        if errno == ENOENT { return nil }
        throw Self.error("stat", path)
    }

    private func settle(_ final: String, existing: Int64, expected: Int64) throws(BackupSiteError) -> Int64 {
        guard existing == expected else {
            throw BackupSiteError(
                .exists, "\(final) already exists with \(existing) bytes, not \(expected): left untouched")
        }
        return existing
    }

    /// The error for a failed `function` on `path`, from `errno`.
    static func error(_ function: String, _ path: String) -> BackupSiteError {
        let code = errno
        return BackupSiteError(
            .io, "\(function) of \(path) failed: \(String(cString: strerror(code)))", function: function, code: code,
            isTransient: [EIO, EINTR, EAGAIN, ETIMEDOUT, ESTALE, ENETDOWN, ENETUNREACH, ECONNRESET].contains(code))
    }
}

/// Wraps `link`, under a name that `LocalDirectorySite.link(_:to:)` does not shadow.
private func posixLink(_ from: String, _ to: String) -> Int32 { link(from, to) }
