import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes entries under a directory: never over an existing file, never outside it; an
/// entry seen again in a later part is appended to. `removeWritten` undoes a failed run.
public final class ExtractSink: ArchiveEntrySink {
    public let directory: String
    /// The part being read (1-based): its manifest is written as manifest_partN.json after the first.
    public var part = 1
    private var written: [String] = []
    private var writtenSet = Set<String>()
    private var madeDirectories: [String] = []
    private var descriptor: Int32 = -1
    private var path = ""

    /// Extracts under `directory`: an existing directory, or a path whose parent is one
    /// (made by `createDirectory`).
    public init(directory: String) {
        self.directory = URL(fileURLWithPath: directory).standardizedFileURL.path
    }

    public var filesWritten: Int { written.count }

    /// Makes the directory if it does not exist yet (mode 0700).
    public func createDirectory() throws {
        if !FileManager.default.fileExists(atPath: directory) { try makeDirectory(directory) }
    }

    /// A relative path with no empty, `.` or `..` part, no backslash and no NUL.
    public static func isSafe(_ name: String) -> Bool {
        guard !name.isEmpty, !name.hasPrefix("/"), !name.contains("\\"), !name.contains("\u{0}") else {
            return false
        }
        return name.split(separator: "/", omittingEmptySubsequences: false).allSatisfy {
            !$0.isEmpty && $0 != "." && $0 != ".."
        }
    }

    public func begin(_ name: String) throws {
        guard Self.isSafe(name) else {
            throw ArchiveFileError(
                "refusing the entry \"\(name)\": an absolute name, or one with an empty, . or .. part, would land "
                    + "outside \(directory)")
        }
        let relative = name == ArchiveLayout.manifest && part > 1 ? "manifest_part\(part).json" : name
        path = directory + "/" + relative
        if writtenSet.contains(relative) {
            descriptor = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC)
        } else {
            let parts = relative.split(separator: "/").dropLast()
            var parent = directory
            for part in parts {
                parent += "/" + part
                try ensureDirectory(parent)
            }
            descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            if descriptor >= 0 {
                written.append(path)
                writtenSet.insert(relative)
            } else if errno == EEXIST {
                throw ArchiveFileError("refusing to overwrite \(path), which exists; extract into another directory")
            }
        }
        guard descriptor >= 0 else { throw Self.posix("cannot create \(path)") }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let count = writeBytes(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if count < 0 {
                if errno == EINTR { continue }
                throw Self.posix("cannot write \(path)")
            }
            offset += count
        }
    }

    public func end() throws {
        let status = close(descriptor)
        descriptor = -1
        if status != 0 { throw Self.posix("cannot write \(path)") }
    }

    /// Removes every file and directory this run made, newest first.
    public func removeWritten() {
        if descriptor >= 0 { _ = close(descriptor) }
        descriptor = -1
        for file in written.reversed() { unlink(file) }
        for directory in madeDirectories.reversed() { rmdir(directory) }
        written = []
        madeDirectories = []
    }

    /// `path` exists as a real directory (not a link), or is made now.
    private func ensureDirectory(_ path: String) throws {
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw ArchiveFileError("\(path) exists and is not a directory; extract into another directory")
            }
            return
        }
        try makeDirectory(path)
    }

    private func makeDirectory(_ path: String) throws {
        guard mkdir(path, 0o700) == 0 else { throw Self.posix("cannot create the directory \(path)") }
        madeDirectories.append(path)
    }

    private static func posix(_ what: String) -> ArchiveFileError {
        ArchiveFileError("\(what): \(String(cString: strerror(errno)))")
    }
}

/// `write(2)`, under a name the sinks' own `write` does not hide.
private func writeBytes(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}
