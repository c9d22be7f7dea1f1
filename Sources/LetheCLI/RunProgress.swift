/// One reading of `lethe run`'s progress: this process's counters and the queue's backlog.
package struct RunProgressSample: Sendable, Equatable {
    /// Since the run started.
    package var elapsed: Duration
    /// Tasks this process ran to an outcome.
    package var tasksDone: Int
    /// Rows (blobs included) this process deleted.
    package var rowsDeleted: Int
    /// Tasks due and not yet claimed, across every worker; nil when the query failed.
    package var queued: Int?
    /// Tasks running, across every worker; nil when the query failed.
    package var running: Int?

    package init(elapsed: Duration, tasksDone: Int, rowsDeleted: Int, queued: Int?, running: Int?) {
        self.elapsed = elapsed
        self.tasksDone = tasksDone
        self.rowsDeleted = rowsDeleted
        self.queued = queued
        self.running = running
    }
}

/// The text of `lethe run`'s progress line, and the control characters that redraw it in
/// place on a terminal. Pure: the reporter feeds it samples.
package enum RunProgressLine {
    /// `3 tasks done | 1,250 rows/s | 48,000 rows deleted | backlog 12 queued, 4 running | 38s`.
    /// The rate is over the interval since `previous` (the whole run without one).
    package static func text(_ sample: RunProgressSample, previous: RunProgressSample? = nil) -> String {
        let backlog =
            if let queued = sample.queued, let running = sample.running {
                "backlog \(grouped(queued)) queued, \(grouped(running)) running"
            } else {
                "backlog ?"
            }
        return [
            "\(grouped(sample.tasksDone)) task\(sample.tasksDone == 1 ? "" : "s") done",
            "\(grouped(rate(sample, previous: previous))) rows/s",
            "\(grouped(sample.rowsDeleted)) rows deleted", backlog, duration(sample.elapsed),
        ].joined(separator: " | ")
    }

    /// Rows per second since `previous`, or over the whole run; 0 for an empty interval.
    package static func rate(_ sample: RunProgressSample, previous: RunProgressSample?) -> Int {
        let (rows, time) =
            if let previous {
                (sample.rowsDeleted - previous.rowsDeleted, sample.elapsed - previous.elapsed)
            } else {
                (sample.rowsDeleted, sample.elapsed)
            }
        let seconds = Double(time.components.seconds) + Double(time.components.attoseconds) / 1e18
        guard seconds > 0, rows > 0 else { return 0 }
        return Int((Double(rows) / seconds).rounded())
    }

    /// Redraws the line in place: back to column 0, clear to the end, the text, and back to
    /// column 0 again, so that a log line written meanwhile starts at the left edge.
    package static func redraw(_ text: String) -> String { "\r\u{1B}[K" + text + "\r" }

    /// The last drawing: the text stays on screen, followed by a newline.
    package static func finish(_ text: String) -> String { "\r\u{1B}[K" + text + "\n" }

    /// `1234567` → `1,234,567` (the same in every locale).
    package static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { out.append(",") }
            out.append(digit)
        }
        return (value < 0 ? "-" : "") + out
    }

    /// `42s`, `3m07s`, `2h05m` (whole seconds, rounded down).
    package static func duration(_ duration: Duration) -> String {
        let seconds = max(0, duration.components.seconds)
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m" + twoDigits(seconds % 60) + "s" }
        return "\(seconds / 3600)h" + twoDigits(seconds % 3600 / 60) + "m"
    }

    private static func twoDigits(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
}

/// Where `lethe run` draws its progress line: standard error when it is a terminal, else
/// standard output when that is; nowhere otherwise, so logs and pipes see nothing extra.
package enum RunProgressTarget: Equatable, Sendable {
    case standardError, standardOutput

    package static func choose(standardErrorIsTerminal: Bool, standardOutputIsTerminal: Bool) -> RunProgressTarget? {
        if standardErrorIsTerminal { return .standardError }
        if standardOutputIsTerminal { return .standardOutput }
        return nil
    }
}
