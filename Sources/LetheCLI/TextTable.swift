import Foundation

/// Left-aligned columns for terminal output, two spaces apart.
package struct TextTable {
    var headers: [String]
    var rows: [[String]] = []

    package init(_ headers: String...) { self.headers = headers }

    /// A table whose columns are built at run time.
    package init(headers: [String]) { self.headers = headers }

    package mutating func add(_ cells: String...) { rows.append(cells) }

    /// Adds a row built at run time.
    package mutating func add(row cells: [String]) { rows.append(cells) }

    package var rendered: String {
        let widths = headers.indices.map { column in
            ([headers[column]] + rows.map { column < $0.count ? $0[column] : "" }).map(\.count).max() ?? 0
        }
        func line(_ cells: [String]) -> String {
            var out = ""
            for (index, cell) in cells.enumerated() {
                let isLast = index == cells.count - 1
                out += isLast ? cell : cell.padding(widths[index]) + "  "
            }
            return out
        }
        return ([line(headers)] + rows.map(line)).joined(separator: "\n")
    }

    /// The same table in Markdown (BENCHMARKS.md); `|` in a cell is escaped.
    package var markdown: String {
        func line(_ cells: [String]) -> String {
            let padded = cells + Array(repeating: "", count: max(headers.count - cells.count, 0))
            return "| " + padded.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |"
        }
        let rule = "|" + String(repeating: "---|", count: headers.count)
        return ([line(headers), rule] + rows.map(line)).joined(separator: "\n")
    }
}

/// Short human forms of times and ages.
package enum HumanText {
    /// `42s`, `7m`, `3h12m`, `4d` — for how long something waited.
    static func age(seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return "\(max(s, 0))s" }
        if s < 3600 { return "\(s / 60)m\(s % 60 == 0 ? "" : "\(s % 60)s")" }
        if s < 86_400 { return "\(s / 3600)h\(s % 3600 / 60 == 0 ? "" : "\(s % 3600 / 60)m")" }
        return "\(s / 86_400)d\(s % 86_400 / 3600 == 0 ? "" : "\(s % 86_400 / 3600)h")"
    }

    /// `2026-11-23 20:32:10Z`.
    package static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate, .withSpaceBetweenDateAndTime, .withTime, .withColonSeparatorInTime]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date) + "Z"
    }

    /// At most `limit` characters on one line.
    package static func clip(_ text: String, _ limit: Int = 60) -> String {
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        return flat.count <= limit ? flat : String(flat.prefix(limit - 1)) + "…"
    }
}

extension String {
    /// Left-aligned in a column `width` characters wide.
    fileprivate func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}

/// Lines for long runs (demo, benchmarks), written at once even into a pipe or file, so
/// progress shows as it happens (`print` is block-buffered there).
package enum Console {
    package static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }
}
