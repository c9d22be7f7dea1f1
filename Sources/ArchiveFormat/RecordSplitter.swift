/// Splits a records entry into its records: one JSON object a line, as
/// `COPY … (FORMAT csv, QUOTE E'\x01')` writes them. A record whose JSON holds a line
/// break (a `json` column keeps its text) is quoted with 0x01, and a 0x01 inside doubled.
public struct RecordSplitter {
    private enum State { case start, plain, quoted, quoteInQuoted }
    /// Records completed so far.
    public private(set) var count = 0
    private let keepsRecords: Bool
    private var record: [UInt8] = []
    private var state = State.start

    public init(keepsRecords: Bool) { self.keepsRecords = keepsRecords }

    /// True between records (not inside one).
    public var isAtBoundary: Bool { state == .start }

    /// Consumes `bytes`; calls `emit` with each completed record (unquoted, without its
    /// line break) when it keeps records.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ emit: ([UInt8]) throws -> Void) rethrows {
        var index = 0
        while index < bytes.count {
            switch state {
            case .start:
                if bytes[index] == 0x01 {
                    state = .quoted
                    index += 1
                } else {
                    state = .plain
                }
            case .plain:
                let end = bytes[index...].firstIndex(of: 0x0A) ?? bytes.count
                if keepsRecords { record.append(contentsOf: bytes[index..<end]) }
                index = end
                if end < bytes.count {
                    index += 1
                    count += 1
                    state = .start
                    if keepsRecords {
                        try emit(record)
                        record.removeAll(keepingCapacity: true)
                    }
                }
            case .quoted:
                let end = bytes[index...].firstIndex(of: 0x01) ?? bytes.count
                if keepsRecords { record.append(contentsOf: bytes[index..<end]) }
                index = end
                if end < bytes.count {
                    index += 1
                    state = .quoteInQuoted
                }
            case .quoteInQuoted:
                if bytes[index] == 0x01 {  // a doubled quote: one 0x01 in the text
                    if keepsRecords { record.append(0x01) }
                    index += 1
                    state = .quoted
                } else {
                    state = .plain  // the closing quote; the line break follows
                }
            }
        }
    }
}
