import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes one JSON object per line to standard error (`--log-format json`).
///
/// Keys: `ts` (UTC, ISO 8601 with milliseconds), `level`, `logger` (the label), `message`,
/// then the metadata with Lethe's `lethe.` prefix dropped (`account`, `entity_type`, `task`,
/// `task_kind`, `attempt`, `worker`, `outcome`, `rows`, `bytes`, `duration_ms`, `error`, …;
/// docs/metrics.md lists them). Whole numbers in metadata are written as JSON numbers. The
/// four fixed keys always win over metadata of the same name.
struct JSONLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    let label: String
    private let write: @Sendable (String) -> Void

    init(label: String, write: @escaping @Sendable (String) -> Void = JSONLogHandler.standardError) {
        self.label = label
        self.write = write
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        write(Self.line(level: event.level, message: "\(event.message)", label: label, metadata: merged, date: Date()))
    }

    /// The JSON text of one record, without the newline.
    static func line(
        level: Logger.Level, message: String, label: String, metadata: Logger.Metadata, date: Date
    )
        -> String
    {
        var fields: [(String, String)] = [
            ("ts", quoted(timestamp(date))), ("level", quoted(level.rawValue)), ("logger", quoted(label)),
            ("message", quoted(message)),
        ]
        let fixed = Set(fields.map(\.0))
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            let name = key.hasPrefix("lethe.") ? String(key.dropFirst("lethe.".count)) : key
            guard !fixed.contains(name) else { continue }
            fields.append((name, json(value)))
        }
        return "{" + fields.map { "\(quoted($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }

    private static func json(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text):
            if let number = Int64(text), String(number) == text { return text }
            return quoted(text)
        case .stringConvertible(let convertible): return quoted(convertible.description)
        case .array(let values): return "[" + values.map(json).joined(separator: ",") + "]"
        case .dictionary(let values):
            return "{"
                + values.sorted { $0.key < $1.key }.map { "\(quoted($0.key)):\(json($0.value))" }
                .joined(separator: ",") + "}"
        }
    }

    /// `text` as a JSON string literal.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out +=
                    "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                    + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    private static func timestamp(_ date: Date) -> String {
        date.formatted(
            Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: TimeZone(identifier: "UTC")!))
    }

    private static let lock = Mutex(())

    /// Writes `line` and a newline to standard error in one call, so lines never interleave.
    static let standardError: @Sendable (String) -> Void = { line in
        let data = Array((line + "\n").utf8)
        lock.withLock { _ in
            data.withUnsafeBufferPointer { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = systemWrite(2, buffer.baseAddress! + offset, buffer.count - offset)
                    if written <= 0 { break }
                    offset += written
                }
            }
        }
    }
}

/// `write(2)`, named apart from `JSONLogHandler.write`.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafePointer<UInt8>, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}
