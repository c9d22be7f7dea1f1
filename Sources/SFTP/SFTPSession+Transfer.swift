import CLibSSH2

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension SFTPSession {
    /// The size of each download read: 1 MiB lets libssh2 pipeline many SFTP packets
    /// (≈400 MB/s over loopback, against ≈50 MB/s with 8 KiB).
    static let chunkSize = 1 << 20

    /// Uploads `localPath` to `remotePath` so that the final name only ever holds a complete,
    /// flushed file: writes `.<name>.<random>.part` beside it, fsyncs, checks its size and
    /// renames it into place. Returns the verified size.
    ///
    /// Idempotent: when `remotePath` already holds a file of the same size (an earlier attempt
    /// got that far) it succeeds without replacing it; a different size throws `.exists` and
    /// leaves the remote file alone.
    /// `window` sets the bytes kept in flight (see `UploadWindow`).
    public func upload(
        from localPath: String, to remotePath: String, window: Int = UploadWindow.defaultWindow
    ) throws(SFTPError) -> Int64 {
        let local = try LocalFile(path: localPath, flags: O_RDONLY, endpoint: endpoint)
        let size = try local.size()
        if let existing = try stat(remotePath) { return try settle(remotePath, existing: existing, expected: size) }

        let (directory, name) = Self.split(remotePath)
        let temporary = "\(directory)/\(Self.temporaryName(for: name))"
        do throws(SFTPError) {
            try copy(local, toNew: temporary, window: UploadWindow(window: window))
            guard let written = try stat(temporary) else {
                throw SFTPError(.io, "\(location(temporary)) vanished after upload", function: "libssh2_sftp_stat_ex")
            }
            guard written == size else {
                throw SFTPError(
                    .sizeMismatch, "uploaded \(location(temporary)) has \(written) bytes, \(localPath) has \(size)")
            }
            do throws(SFTPError) {
                try rename(temporary, to: remotePath)
            } catch {
                // A concurrent or earlier upload may have won the name.
                guard error.kind == .sftp, let existing = try stat(remotePath) else { throw error }
                try? remove(temporary)
                return try settle(remotePath, existing: existing, expected: size)
            }
            return size
        } catch {
            if isConnected { try? remove(temporary) }
            throw error
        }
    }

    /// `.<name>.<random lowercase hex>.part`: the name an upload writes before renaming it
    /// into place (for every kind of backup site).
    public static func temporaryName(for name: String) -> String {
        ".\(name).\(String(UInt64.random(in: .min ... .max), radix: 16)).part"
    }

    /// Downloads `remotePath` to `localPath` (created or truncated); returns the bytes copied.
    /// Stops with an error once more than `atMost` bytes came: a site serving an endless or
    /// oversized file never fills the local disk.
    public func download(
        _ remotePath: String, to localPath: String, atMost: Int64 = .max
    ) throws(SFTPError) -> Int64 {
        let remote = try RemoteFile(
            session: self, path: remotePath, flags: LIBSSH2_FXF_READ, what: "opening \(location(remotePath)) failed")
        let local = try LocalFile(path: localPath, flags: O_WRONLY | O_CREAT | O_TRUNC, endpoint: endpoint)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        var total: Int64 = 0
        while true {
            let count = try remote.read(into: buffer)
            if count == 0 { break }
            try local.write(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            total += Int64(count)
            if total > atMost {
                throw SFTPError(
                    .io, "\(location(remotePath)) holds more than the \(atMost) bytes expected",
                    function: "libssh2_sftp_read")
            }
        }
        try remote.close()
        try local.close()
        return total
    }

    /// Creates `path` (which must not exist) and writes all of `local` into it, flushed and closed.
    /// Keeps `window`'s bytes in flight from a buffer that slides over the file (`UploadWindow`).
    private func copy(_ local: LocalFile, toNew path: String, window shape: UploadWindow) throws(SFTPError) {
        let remote = try RemoteFile(
            session: self, path: path, flags: LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL,
            what: "creating \(location(path)) failed")
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: shape.capacity, alignment: 16)
        defer { buffer.deallocate() }
        var state = UploadWindowState()
        while !state.isDone {
            if state.needsRead(shape) {
                if let move = state.compact(shape), let base = buffer.baseAddress {
                    base.copyMemory(from: base + move.from, byteCount: move.count)
                }
                state.didRead(try local.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[state.end...])))
                continue
            }
            let offer = state.offer(shape)
            let acknowledged = try remote.writeAhead(UnsafeRawBufferPointer(rebasing: buffer[offer]))
            guard acknowledged <= offer.count else {
                throw SFTPError(
                    .io,
                    "writing \(location(path)) failed: libssh2 acknowledged \(acknowledged) of \(offer.count) bytes",
                    function: "libssh2_sftp_write")
            }
            state.didWrite(acknowledged)
        }
        try remote.fsync()
        try remote.close()
    }

    /// The outcome when `remotePath` already exists: success for the same size, `.exists` otherwise.
    private func settle(_ remotePath: String, existing: Int64, expected: Int64) throws(SFTPError) -> Int64 {
        guard existing == expected else {
            throw SFTPError(
                .exists,
                "\(location(remotePath)) already exists with \(existing) bytes, not \(expected): left untouched")
        }
        return existing
    }

    /// The directory and last component of `path` ("." for a bare name).
    static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
    }
}
