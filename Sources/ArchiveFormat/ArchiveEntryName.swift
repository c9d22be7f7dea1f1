import Foundation

/// What an archive entry's name says it holds (the inverse of `ArchiveLayout`).
public enum ArchiveEntryName: Hashable, Sendable {
    /// `blobs/STORE/KEY`: one blob's content (`key` decoded).
    case blob(store: String, key: String)
    /// `records/_blobs/STORE.jsonl`: a blob store's rows, their content column null.
    case blobRows(store: String)
    /// `records/TYPE/N-TABLE.jsonl`: table `index` of an entity type.
    case rows(type: String, index: Int, table: String)
    case manifest
    /// Anything else: not written by Lethe.
    case other

    public init(_ name: String) {
        self = .other
        if name == ArchiveLayout.manifest {
            self = .manifest
            return
        }
        let parts = name.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, !parts[1].isEmpty, !parts[2].isEmpty else { return }
        switch parts[0] {
        case "blobs":
            if let key = parts[2].removingPercentEncoding { self = .blob(store: parts[1], key: key) }
        case "records":
            guard parts[2].hasSuffix(".jsonl") else { return }
            let file = String(parts[2].dropLast(".jsonl".count))
            if parts[1] == "_blobs" {
                self = .blobRows(store: file)
            } else if let dash = file.firstIndex(of: "-"), let index = Int(file[..<dash]), index >= 0 {
                self = .rows(type: parts[1], index: index, table: String(file[file.index(after: dash)...]))
            }
        default: return
        }
    }
}
