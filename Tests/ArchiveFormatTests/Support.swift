import ArchiveFormat
import Foundation

/// A fresh directory under the system's temporary directory, removed after `body`.
func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("lethe-archive-format-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// Test bytes from a seeded generator (SplitMix64), the same on every run.
struct Generator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Bytes that do not compress.
    mutating func bytes(_ count: Int) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(count + 8)
        while result.count < count { withUnsafeBytes(of: next()) { result.append(contentsOf: $0) } }
        return Array(result.prefix(count))
    }

    /// Letters and digits that compress little: a record's text.
    mutating func text(_ count: Int) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        return String(decoding: bytes(count).map { alphabet[Int($0 & 63)] }, as: UTF8.self)
    }
}

/// Collects every entry a scan hands over, its pieces joined across parts; each part's
/// manifest.json apart.
final class CollectingSink: ArchiveEntrySink {
    var contents: [String: [UInt8]] = [:]
    /// Entry names in the order first seen.
    var order: [String] = []
    /// The names `begin` was called with, in order (an entry cut at a part boundary twice).
    var begun: [String] = []
    var manifests: [[UInt8]] = []
    private var current = ""

    func begin(_ name: String) throws {
        begun.append(name)
        current = name
        if name == ArchiveLayout.manifest {
            manifests.append([])
        } else if contents[name] == nil {
            order.append(name)
            contents[name] = []
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        if current == ArchiveLayout.manifest {
            manifests[manifests.count - 1] += bytes
        } else {
            contents[current]! += bytes
        }
    }

    func end() throws {}
}
