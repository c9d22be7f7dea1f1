import Archive
import Crypto
import Foundation

/// One part, read to its end and found to match its manifest.
public struct PartSummary: Sendable {
    public var file: ArchiveFile
    public var manifest: ArchiveManifest
    /// Entries in the ZIP, the manifest included.
    public var entries: Int
    public var records: Int
    public var bytes: Int64
}

/// Receives one part's entries as they stream: begin, the data in chunks, end.
public protocol ArchiveEntrySink: AnyObject {
    func begin(_ name: String) throws
    func write(_ bytes: UnsafeRawBufferPointer) throws
    func end() throws
}

/// Reads one archive part from start to end, handing every entry to a sink while hashing
/// it, then checks what it read against the part's manifest (its last entry).
public enum ArchivePartScan {
    /// A manifest larger than this is refused (it lists every entry: about 150 bytes each).
    public static let manifestLimit = 256 << 20

    public static func scan(
        _ file: ArchiveFile, key: ArchiveKeys.Key, into sink: (any ArchiveEntrySink)? = nil
    ) throws -> PartSummary {
        var current: String?
        var decrypted = false  // an encrypted entry was read: the key is right
        func reading<T>(_ body: () throws -> T) throws -> T {
            do {
                return try body()
            } catch let error as ArchiveError {
                if error.isWrongPassphrase && !decrypted {
                    throw ArchiveFileError(
                        "\(file.path): \(key.source) does not open the archive: the key is wrong (\(error.message))")
                }
                if error.isWrongPassphrase {
                    throw ArchiveFileError(
                        "\(file.path) is damaged: entry \(current ?? "") does not decrypt with the key that opened "
                            + "the entries before it (\(error.message))")
                }
                throw ArchiveFileError(
                    "\(file.path) is damaged or not a Lethe archive" + (current.map { " (entry \($0))" } ?? "")
                        + ": \(error.message)")
            }
        }
        let reader = try reading { try ZipReader(openingFileAt: file.path, passphrase: key.secret) }
        defer { reader.close() }
        var read: [ArchiveManifest.Entry] = []
        var seen = Set<String>()
        var manifestData: Data?
        while let info = try reading({ try reader.nextEntry() }) {
            current = info.name
            if manifestData != nil {
                throw ArchiveFileError(
                    "\(file.path): entry \(info.name) follows manifest.json, which must be the last entry")
            }
            // Lethe writes every entry encrypted under a safe relative name: anything else is a
            // forged or foreign file (an unencrypted entry needs no key, so "the account's key
            // opens it" would prove nothing), refused before a byte of it is used.
            guard ExtractSink.isSafe(info.name) else {
                throw ArchiveFileError(
                    "\(file.path): refusing the entry \"\(info.name)\": an absolute name, or one with an empty, . or .. "
                        + "part; a Lethe archive's entries are relative names such as records/TYPE/0-TABLE.jsonl")
            }
            // (An empty entry is the one Lethe stores plain: see ZipWriter.)
            guard info.isEncrypted || info.size == 0 else {
                throw ArchiveFileError(
                    "\(file.path): entry \(info.name) is not encrypted; every entry of a Lethe archive is encrypted "
                        + "with AES-256 under the account's archive key (a forged or foreign file)")
            }
            guard seen.insert(info.name).inserted else {
                throw ArchiveFileError("\(file.path): entry \(info.name) appears twice")
            }
            let isManifest = info.name == ArchiveLayout.manifest
            var hasher = SHA256()
            var size: Int64 = 0
            var splitter = info.name.hasPrefix("records/") ? RecordSplitter(keepsRecords: false) : nil
            var manifest = Data()
            try sink?.begin(info.name)
            try reading {
                try reader.readEntry { chunk in
                    hasher.update(bufferPointer: chunk)
                    size += Int64(chunk.count)
                    splitter?.feed(chunk) { _ in }
                    if isManifest {
                        guard manifest.count + chunk.count <= manifestLimit else {
                            throw ArchiveFileError("\(file.path): manifest.json is larger than \(manifestLimit) bytes")
                        }
                        manifest.append(contentsOf: chunk)
                    }
                    try sink?.write(chunk)
                }
            }
            try sink?.end()
            if !info.isEncrypted && size > 0 {
                throw ArchiveFileError(
                    "\(file.path): entry \(info.name) is not encrypted yet holds \(size) bytes; every entry of a Lethe "
                        + "archive with data is encrypted with AES-256 under the account's archive key")
            }
            if info.isEncrypted { decrypted = true }
            if isManifest {
                manifestData = manifest
            } else {
                let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
                read.append(.init(name: info.name, size: size, records: splitter?.count ?? 0, sha256: digest))
            }
        }
        guard let manifestData else {
            throw ArchiveFileError("\(file.path): no manifest.json (not a Lethe archive, or cut short)")
        }
        let manifest: ArchiveManifest
        do {
            manifest = try ArchiveManifest(decoding: manifestData)
        } catch {
            throw ArchiveFileError("\(file.path): manifest.json is not a Lethe archive manifest (\(error))")
        }
        let problems = compare(read, with: manifest, file: file)
        guard problems.isEmpty else {
            let shown = problems.prefix(20) + (problems.count > 20 ? ["… and \(problems.count - 20) more"] : [])
            throw ArchiveFileError(
                "\(file.path) does not match its manifest:\n  " + shown.joined(separator: "\n  "))
        }
        return PartSummary(
            file: file, manifest: manifest, entries: read.count + 1, records: read.reduce(0) { $0 + $1.records },
            bytes: read.reduce(0) { $0 + $1.size })
    }

    /// Every difference between what was read and what the manifest lists.
    static func compare(
        _ read: [ArchiveManifest.Entry], with manifest: ArchiveManifest, file: ArchiveFile
    ) -> [String] {
        var problems: [String] = []
        if let account = file.account, let job = file.job, let part = file.part,
            account != manifest.account || job != manifest.job || part != manifest.part
        {
            problems.append(
                "the file name says account \(account), job \(job), part \(part); the manifest says account "
                    + "\(manifest.account), job \(manifest.job), part \(manifest.part)")
        }
        var listed: [String: ArchiveManifest.Entry] = [:]
        for entry in manifest.entries {
            if listed.updateValue(entry, forKey: entry.name) != nil {
                problems.append("the manifest lists entry \(entry.name) twice")
            }
        }
        for entry in read {
            guard let expected = listed.removeValue(forKey: entry.name) else {
                problems.append("entry \(entry.name) is in the archive but not in its manifest")
                continue
            }
            if entry.size != expected.size {
                problems.append("entry \(entry.name) has \(entry.size) bytes; the manifest says \(expected.size)")
            }
            if entry.records != expected.records {
                problems.append(
                    "entry \(entry.name) holds \(entry.records) records; the manifest says \(expected.records)")
            }
            if entry.sha256 != expected.sha256.lowercased() {
                problems.append(
                    "entry \(entry.name) has SHA-256 \(entry.sha256); the manifest says \(expected.sha256)")
            }
        }
        for entry in manifest.entries where listed[entry.name] != nil {
            problems.append("entry \(entry.name) is in the manifest but missing from the archive")
        }
        return problems
    }
}
