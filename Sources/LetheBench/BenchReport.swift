import Foundation
import LetheCLI

/// What a bench measured, for people and for BENCHMARKS.md: each line and table goes to the
/// terminal and, when `LETHE_BENCH_REPORT` names a file, in Markdown to the end of that file.
/// `scripts/benchmarks` sets it per bench and splices the files into BENCHMARKS.md, so the
/// figures there are the ones the last run printed.
enum BenchReport {
    static let variable = "LETHE_BENCH_REPORT"

    /// A line of context for the figures (server settings, sizes, a finding).
    static func line(_ text: String) {
        Console.line(text)
        append(text.trimmingCharacters(in: .whitespacesAndNewlines) + "\n\n")
    }

    /// A result table, after a blank line on the terminal.
    static func table(_ table: TextTable) {
        Console.line("\n" + table.rendered)
        append(table.markdown + "\n\n")
    }

    /// Preformatted text (a report of its own layout), as a code block in the file.
    static func block(_ text: String) {
        Console.line(text)
        append("```\n" + text.trimmingCharacters(in: .newlines) + "\n```\n\n")
    }

    /// A table for the file only (the terminal got its own rendering).
    static func record(_ table: TextTable) { append(table.markdown + "\n\n") }

    /// A line for the file only.
    static func record(_ text: String) { append(text + "\n\n") }

    private static func append(_ text: String) {
        guard let path = ProcessInfo.processInfo.environment[variable], !path.isEmpty else { return }
        let manager = FileManager.default
        if !manager.fileExists(atPath: path) { manager.createFile(atPath: path, contents: nil) }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            Console.line("warning: cannot append to \(variable)=\(path)")
            return
        }
        defer { try? handle.close() }
        _ = try? handle.seekToEnd()
        try? handle.write(contentsOf: Data(text.utf8))
    }
}
