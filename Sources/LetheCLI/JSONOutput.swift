import Foundation

/// The JSON every `--json` flag prints: one document, keys in snake_case and sorted, times
/// in ISO 8601 (UTC), numbers as numbers; pretty-printed for people, parsed by `jq`.
enum JSONOutput {
    /// `value` as that document.
    static func text(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Prints `value` as that document.
    static func print(_ value: some Encodable) throws {
        Swift.print(try text(value))
    }
}
