import Crypto
import Foundation

/// One `migrations/NNNN_name.sql` file: its version, name, SQL and SHA-256 checksum.
public struct MigrationFile: Sendable, Equatable {
    public var version: Int
    public var name: String
    public var fileName: String
    public var sql: String
    /// SHA-256 of the file's bytes, lower-case hex.
    public var checksum: String

    public init(fileName: String, contents: Data) throws(MigrationError) {
        guard let (version, name) = Self.parse(fileName: fileName) else {
            throw .invalidFileName(fileName)
        }
        guard let sql = String(data: contents, encoding: .utf8) else { throw .notUTF8(fileName) }
        self.version = version
        self.name = name
        self.fileName = fileName
        self.sql = sql
        self.checksum = SHA256.hash(data: contents).map { String(format: "%02x", $0) }.joined()
    }

    /// `0012_add_holds.sql` → (12, "add_holds"); nil for any other shape.
    static func parse(fileName: String) -> (Int, String)? {
        guard fileName.hasSuffix(".sql") else { return nil }
        let stem = fileName.dropLast(4)
        guard let underscore = stem.firstIndex(of: "_") else { return nil }
        let digits = stem[..<underscore]
        let name = stem[stem.index(after: underscore)...]
        guard digits.count >= 4, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
            let version = Int(digits), version > 0,
            !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") })
        else { return nil }
        return (version, String(name))
    }

    /// Every `.sql` file in `directory`, sorted by version; rejects badly named or
    /// duplicate-version files, naming them.
    public static func load(directory: URL) throws(MigrationError) -> [MigrationFile] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw .directoryUnreadable(directory.path)
        }
        var files: [MigrationFile] = []
        for name in names.sorted() where name.hasSuffix(".sql") {
            guard let data = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path) else {
                throw .fileUnreadable(name)
            }
            files.append(try MigrationFile(fileName: name, contents: data))
        }
        return try ordered(files)
    }

    /// `files` sorted by version; rejects two files with one version, naming both.
    static func ordered(_ files: [MigrationFile]) throws(MigrationError) -> [MigrationFile] {
        let files = files.sorted { $0.version < $1.version }
        for (a, b) in zip(files, files.dropFirst()) where a.version == b.version {
            throw .duplicateVersion(a.fileName, b.fileName)
        }
        return files
    }
}
