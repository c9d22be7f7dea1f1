import CLibArchive
import Foundation

extension ZipWriter {
    /// Starts a regular-file entry; `size: nil` streams an entry of unknown size. The name
    /// must be a relative path without empty, `.` or `..` components. The header (built with
    /// `archive_entry_new`, `archive_entry_set_pathname_utf8`, `archive_entry_set_size` or
    /// `archive_entry_unset_size`, `archive_entry_set_mtime`) goes out through
    /// `archive_write_header` here, or, for an entry of unknown size, with its first byte;
    /// `compression` decides deflate or store then (see `EntryCompression`).
    public func beginEntry(
        _ name: String, size: Int64? = nil, modified: Date = Date(), compression: EntryCompression = .deflate
    ) throws {
        let archive = try usable("ZipWriter.beginEntry")
        guard entry == nil else { throw ArchiveError.usage("ZipWriter.beginEntry", "an entry is still open") }
        try Self.validate(name: name)
        if let size, size < 0 { throw ArchiveError.usage("ZipWriter.beginEntry", "the size \(size) is negative") }
        var entry = Entry(name: name, declaredSize: size, modified: modified, compression: compression)
        if size != nil { try writeHeader(of: &entry, archive, size: size, first: nil) }
        self.entry = entry
    }

    /// Compresses, encrypts and writes `bytes` to the current entry. Throws, writing nothing,
    /// if they would exceed the entry's declared size (libarchive would silently cut them).
    /// Wraps `archive_write_data`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        let archive = try usable("ZipWriter.write")
        guard var entry else { throw ArchiveError.usage("ZipWriter.write", "no entry is open") }
        if let declared = entry.declaredSize, entry.written + Int64(bytes.count) > declared {
            throw ArchiveError.usage("ZipWriter.write", "the data exceeds the entry's declared size \(declared)")
        }
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        if !entry.isHeaderWritten {
            try writeHeader(of: &entry, archive, size: nil, first: bytes)
            self.entry = entry
        }
        var offset = 0
        while offset < bytes.count {
            let length = bytes.count - offset
            let count = try recording { () throws(ArchiveError) in
                try checkCount("archive_write_data", archive) { archive_write_data(archive, base + offset, length) }
            }
            guard count > 0 else {
                throw record(ArchiveError(function: "archive_write_data", code: EIO, message: "wrote no bytes"))
            }
            offset += count
        }
        entry.written += Int64(bytes.count)
        self.entry = entry
    }

    /// Writes `bytes` to the current entry; see `write(_:)`. Wraps `archive_write_data`.
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Ends the current entry (flushes deflate, writes the HMAC and the data descriptor); an
    /// entry that got no data is written as a plain entry of size 0. An entry shorter than its
    /// declared size fails the whole ZIP. Wraps `archive_write_finish_entry`.
    public func finishEntry() throws {
        try finishCurrentEntry()
    }

    func finishCurrentEntry() throws(ArchiveError) {
        let archive = try usable("ZipWriter.finishEntry")
        guard var entry else { throw ArchiveError.usage("ZipWriter.finishEntry", "no entry is open") }
        self.entry = nil
        if let declared = entry.declaredSize, declared != entry.written {
            throw record(
                .usage("ZipWriter.finishEntry", "the entry holds \(entry.written) bytes, not its declared \(declared)"))
        }
        if !entry.isHeaderWritten { try writeHeader(of: &entry, archive, size: 0, first: nil) }
        try recording { () throws(ArchiveError) in
            try check("archive_write_finish_entry", archive) { archive_write_finish_entry(archive) }
        }
        lastEntryStored = entry.isStored
    }

    /// Whether `bytes` look incompressible: at least 4 KiB, and the byte entropy of their first
    /// 64 KiB is at least 7.9 bits a byte. Deflate could then save at most about 1 % (its
    /// Huffman codes) plus repeats, which compressed media do not have; random bytes score
    /// about 7.95 on 4 KiB and 7.997 on 64 KiB, JSON and other text 4 to 6.
    public static func looksIncompressible(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let sample = bytes.prefix(64 << 10)
        guard sample.count >= 4 << 10 else { return false }
        var counts = [Int](repeating: 0, count: 256)
        for byte in sample { counts[Int(byte)] += 1 }
        let total = Double(sample.count)
        let entropy = counts.reduce(0.0) { sum, count in
            guard count > 0 else { return sum }
            let p = Double(count) / total
            return sum - p * log2(p)
        }
        return entropy >= 7.9
    }

    /// Writes the entry's local header, of known `size` or (nil) unknown size; `first`: the
    /// entry's first bytes, which decide `.storeIfIncompressible`. Wraps `archive_entry_new`,
    /// `archive_entry_set_*`, `archive_write_zip_set_compression_store` or `_deflate` (the
    /// method applies to the headers that follow, so every header sets it), `archive_write_header`
    /// and `archive_entry_free`.
    private func writeHeader(
        of entry: inout Entry, _ archive: OpaquePointer, size: Int64?, first: UnsafeRawBufferPointer?
    ) throws(ArchiveError) {
        guard let header = archive_entry_new() else {
            throw record(ArchiveError(function: "archive_entry_new", code: ENOMEM, message: "out of memory"))
        }
        defer { archive_entry_free(header) }
        archive_entry_set_pathname_utf8(header, entry.name)
        archive_entry_set_filetype(header, CLibArchive_AE_IFREG)
        archive_entry_set_perm(header, 0o600)
        if let size { archive_entry_set_size(header, size) } else { archive_entry_unset_size(header) }
        let time = entry.modified.timeIntervalSince1970
        let seconds = time.rounded(.down)
        archive_entry_set_mtime(header, time_t(seconds), Int((time - seconds) * 1e9))
        let store =
            compressionLevel > 0 && entry.compression == .storeIfIncompressible
            && first.map(Self.looksIncompressible) == true
        if compressionLevel > 0 {  // at level 0 every entry is stored already
            try recording { () throws(ArchiveError) in
                if store {
                    try check("archive_write_zip_set_compression_store", archive) {
                        archive_write_zip_set_compression_store(archive)
                    }
                } else {
                    try check("archive_write_zip_set_compression_deflate", archive) {
                        archive_write_zip_set_compression_deflate(archive)
                    }
                }
            }
        }
        entry.isStored = store
        try recording { () throws(ArchiveError) in
            try check("archive_write_header", archive) { archive_write_header(archive, header) }
        }
        entry.isHeaderWritten = true
    }

    /// Accepts a relative name without empty, `.` or `..` components and without NUL bytes,
    /// so that no extractor writes outside its target directory.
    static func validate(name: String) throws(ArchiveError) {
        let components = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !name.isEmpty, !name.utf8.contains(0),
            components.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." })
        else { throw .usage("ZipWriter.beginEntry", "the entry name \"\(name)\" is not a plain relative path") }
    }
}
