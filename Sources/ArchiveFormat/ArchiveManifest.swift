import Foundation

/// A part's `manifest.json` (its last entry), as `ArchivePartWriter` writes it and
/// `ArchivePartScan` reads it back: one type, so writer and reader cannot drift apart.
/// The JSON keys are the `lethe-archive/1` format's (docs/archives.md).
public struct ArchiveManifest: Codable, Sendable, Equatable {
    /// One entry of this part: the bytes in this part only (an entry cut at a part
    /// boundary is listed in both parts, each with its own slice).
    public struct Entry: Codable, Sendable, Equatable {
        public var name: String
        public var size: Int64
        /// Records (lines) of a `records/` entry; 0 for blobs.
        public var records: Int
        /// Lowercase hex SHA-256 of the entry's bytes in this part.
        public var sha256: String
        /// True for a blob's content stored uncompressed because it did not look compressible
        /// (absent from the JSON otherwise: deflated at the part's level).
        public var stored: Bool?

        public init(name: String, size: Int64, records: Int, sha256: String, stored: Bool? = nil) {
            (self.name, self.size, self.records, self.sha256) = (name, size, records, sha256)
            self.stored = stored
        }
    }

    /// The format every manifest written so far names.
    public static let currentFormat = "lethe-archive/1"

    public var format: String
    public var account: String
    /// The job's UUID, lowercase.
    public var job: String
    /// The packing generation (absent from the JSON when 1): a job packed again after it
    /// lost files writes generation 2, 3, … under new file names.
    public var generation: Int
    /// 1-based.
    public var part: Int
    /// True in the last part of the job.
    public var isFinal: Bool
    /// When the job was created (whole seconds, UTC).
    public var createdAt: Date
    /// Per entity type: `cutoff` and `interval`, or `keep_only`.
    public var cutoffs: [String: [String: String]]
    /// Per entity type and table: rows in the job's plan; `orphan_gc:STORE` for orphaned blobs.
    public var counts: [String: [String: Int]]
    public var entries: [Entry]
    /// How the entries are encrypted and compressed, for a reader with other tools.
    public var encryption: String

    public init(
        format: String = ArchiveManifest.currentFormat, account: String, job: String, generation: Int = 1, part: Int,
        isFinal: Bool,
        createdAt: Date, cutoffs: [String: [String: String]], counts: [String: [String: Int]], entries: [Entry],
        encryption: String
    ) {
        (self.format, self.account, self.job, self.part, self.isFinal) = (format, account, job, part, isFinal)
        self.generation = generation
        (self.createdAt, self.cutoffs, self.counts, self.entries) = (createdAt, cutoffs, counts, entries)
        self.encryption = encryption
    }

    /// The `encryption` text of a part written at deflate level `compressionLevel`.
    public static func encryption(compressionLevel: Int) -> String {
        "WinZip AES-256 (AE-1), deflate level \(compressionLevel)"
    }

    enum CodingKeys: String, CodingKey {
        case format, account, job, generation, part, cutoffs, counts, entries, encryption
        case isFinal = "final"
        case createdAt = "created_at"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        format = try container.decode(String.self, forKey: .format)
        account = try container.decode(String.self, forKey: .account)
        job = try container.decode(String.self, forKey: .job)
        generation = try container.decodeIfPresent(Int.self, forKey: .generation) ?? 1
        part = try container.decode(Int.self, forKey: .part)
        isFinal = try container.decode(Bool.self, forKey: .isFinal)
        let created = try container.decode(String.self, forKey: .createdAt)
        guard let date = ISO8601DateFormatter().date(from: created) else {
            throw DecodingError.dataCorruptedError(
                forKey: .createdAt, in: container, debugDescription: "\(created) is not an ISO 8601 time")
        }
        createdAt = date
        cutoffs = try container.decode([String: [String: String]].self, forKey: .cutoffs)
        counts = try container.decode([String: [String: Int]].self, forKey: .counts)
        entries = try container.decode([Entry].self, forKey: .entries)
        encryption = try container.decode(String.self, forKey: .encryption)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(format, forKey: .format)
        try container.encode(account, forKey: .account)
        try container.encode(job, forKey: .job)
        if generation > 1 { try container.encode(generation, forKey: .generation) }
        try container.encode(part, forKey: .part)
        try container.encode(isFinal, forKey: .isFinal)
        try container.encode(ISO8601DateFormatter().string(from: createdAt), forKey: .createdAt)
        try container.encode(cutoffs, forKey: .cutoffs)
        try container.encode(counts, forKey: .counts)
        try container.encode(entries, forKey: .entries)
        try container.encode(encryption, forKey: .encryption)
    }

    /// The bytes of `manifest.json`: sorted keys, pretty-printed.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return try encoder.encode(self)
    }

    /// A manifest read from `manifest.json`'s bytes.
    public init(decoding data: Data) throws {
        self = try JSONDecoder().decode(Self.self, from: data)
    }
}
