import Foundation

/// Where things sit inside an archive.
public enum ArchiveLayout {
    /// `blobs/STORE/KEY`: a blob's content (the key percent-encoded where it is not a plain name).
    public static func blobEntry(store: String, key: String) -> String { "blobs/\(store)/\(safe(key))" }
    /// Whether `name` is a blob's content (`blobs/…`).
    public static func isBlobContent(_ name: String) -> Bool { name.hasPrefix("blobs/") }
    /// `records/_blobs/STORE.jsonl`: the blob rows without their content column.
    public static func blobRowsEntry(store: String) -> String { "records/_blobs/\(store).jsonl" }
    /// `records/TYPE/N-TABLE.jsonl`: table N (0: the root) of an entity type, one JSON object a line.
    public static func rowsEntry(type: String, index: Int, table: String) -> String {
        "records/\(type)/\(index)-\(table).jsonl"
    }
    public static let manifest = "manifest.json"

    /// The file name of part `part` of a job: `backup_{account}_{job}_{stamp}.zip`, parts
    /// after the first with `_partN` before `.zip`. A job packed again after it lost
    /// files (generation 2 on) has `_gN` after the stamp, so its files never
    /// take the names of the files they replace.
    public static func fileName(account: String, job: UUID, stamp: String, generation: Int = 1, part: Int) -> String {
        var base = "backup_\(safe(account))_\(job.uuidString.lowercased())_\(stamp)"
        if generation > 1 { base += "_g\(generation)" }
        return part == 1 ? "\(base).zip" : "\(base)_part\(part).zip"
    }

    /// `text` with every byte outside `A-Za-z0-9._-` percent-encoded: safe in file names.
    public static func safe(_ text: String) -> String {
        text.utf8.map { byte -> String in
            let c = Character(UnicodeScalar(byte))
            return (c.isASCII && (c.isLetter || c.isNumber || c == "." || c == "_" || c == "-"))
                ? String(c) : String(format: "%%%02X", byte)
        }.joined()
    }
}
