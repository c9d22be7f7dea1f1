import Archive
import Foundation
import TestSupport
import Testing

/// Test data from a seeded generator, the same on every run.
struct Payload {
    private var generator: SeededGenerator

    init(seed: UInt64) { generator = SeededGenerator(seed: seed) }

    mutating func next() -> UInt64 { generator.next() }

    /// Bytes that do not compress: the worst case for the archive's size.
    mutating func randomBytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }
    }

    /// JSON lines like the ones Lethe archives, about `count` bytes (whole lines).
    mutating func jsonLines(_ count: Int) -> [UInt8] {
        var text: [UInt8] = []
        text.reserveCapacity(count + 256)
        var row = 0
        while text.count < count {
            row += 1
            let line =
                "{\"id\":\(row),\"conversation\":\"c-\(next() % 100_000)\",\"account\":\"acct-\(next() % 50)\","
                + "\"created_at\":\"2024-0\(next() % 9 + 1)-1\(next() % 9)T12:\(next() % 50 + 10):00Z\","
                + "\"body\":\"message \(next()) from agent \(next() % 1000) about order \(next() % 10_000_000)\"}\n"
            text.append(contentsOf: line.utf8)
        }
        return text
    }
}

/// One entry to write: its name, bytes, and whether to declare its size up front.
struct EntryFixture {
    var name: String
    var bytes: [UInt8]
    var declaresSize: Bool
}

/// The usual mix: small known-size JSON, several MB of unknown size, an empty entry of
/// unknown size, an empty one of known size 0, and a non-ASCII name in a subdirectory.
func mixedEntries() -> [EntryFixture] {
    var payload = Payload(seed: 42)
    var big = payload.jsonLines(4 << 20)
    big += payload.randomBytes(2 << 20)
    return [
        EntryFixture(name: "accounts.jsonl", bytes: payload.jsonLines(10_000), declaresSize: true),
        EntryFixture(name: "messages/messages.jsonl", bytes: big, declaresSize: false),
        EntryFixture(name: "empty.jsonl", bytes: [], declaresSize: false),
        EntryFixture(name: "zero.jsonl", bytes: [], declaresSize: true),
        EntryFixture(name: "contacts/résumé-ünïcode.jsonl", bytes: payload.jsonLines(3_000), declaresSize: false),
    ]
}

/// Writes `entries` to a new ZIP at `path`, the data in uneven chunks.
func writeZip(
    at path: String, passphrase: String, entries: [EntryFixture],
    modified: Date = Date(timeIntervalSince1970: 1_700_000_000)
) throws {
    let writer = try ZipWriter(creatingFileAt: path, passphrase: passphrase)
    for entry in entries {
        try writer.beginEntry(entry.name, size: entry.declaresSize ? Int64(entry.bytes.count) : nil, modified: modified)
        var offset = 0
        var chunk = 1_000
        while offset < entry.bytes.count {
            let end = min(offset + chunk, entry.bytes.count)
            try entry.bytes[offset..<end].withUnsafeBytes { try writer.write($0) }
            offset = end
            chunk = chunk * 3 % 200_003 + 1
        }
        try writer.finishEntry()
    }
    try writer.close()
}

/// Every entry of the ZIP at `path` with its bytes, read with `readEntry`.
func readZip(at path: String, passphrase: String, chunkSize: Int = 1 << 20) throws -> [(ZipEntryInfo, [UInt8])] {
    let reader = try ZipReader(openingFileAt: path, passphrase: passphrase)
    defer { reader.close() }
    var result: [(ZipEntryInfo, [UInt8])] = []
    while let info = try reader.nextEntry() {
        var bytes: [UInt8] = []
        try reader.readEntry(chunkSize: chunkSize) { bytes.append(contentsOf: $0) }
        result.append((info, bytes))
    }
    return result
}

/// The size of the file at `path`.
func fileSize(_ path: String) throws -> Int64 {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return (attributes[.size] as? NSNumber)?.int64Value ?? -1
}

/// Runs a tool with stdin from /dev/null (bsdtar loops on its passphrase prompt otherwise)
/// and returns its exit status and combined output.
func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    try #require(FileManager.default.isExecutableFile(atPath: executable), "\(executable) is not installed")
    let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-tool-\(UUID().uuidString)")
    try #require(FileManager.default.createFile(atPath: outputPath.path, contents: nil))
    defer { try? FileManager.default.removeItem(at: outputPath) }
    let output = try FileHandle(forWritingTo: outputPath)
    defer { try? output.close() }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let deadline = Date().addingTimeInterval(120)
    while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
    if process.isRunning {
        process.terminate()
        process.waitUntilExit()
        Issue.record("\(executable) \(arguments.first ?? "") did not finish within 120 s")
    }
    let text = String(decoding: try Data(contentsOf: outputPath), as: UTF8.self)
    return (process.terminationStatus, text)
}
