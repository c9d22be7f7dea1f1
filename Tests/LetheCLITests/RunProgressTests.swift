import Foundation
import LetheCLI
import Postgres
import TestSupport
import Testing

/// `lethe run`'s progress line: the text and its redrawing (no I/O), and, through the built
/// binary, that it appears on a terminal and nowhere else.
@Suite struct RunProgressLineTests {
    func sample(
        _ seconds: Int, tasks: Int = 0, rows: Int = 0, queued: Int? = 0, running: Int? = 0
    ) -> RunProgressSample {
        RunProgressSample(
            elapsed: .seconds(seconds), tasksDone: tasks, rowsDeleted: rows, queued: queued, running: running)
    }

    @Test func theLineNamesTasksRateRowsBacklogAndTime() {
        #expect(
            RunProgressLine.text(sample(38, tasks: 3, rows: 48_000, queued: 12, running: 4))
                == "3 tasks done | 1,263 rows/s | 48,000 rows deleted | backlog 12 queued, 4 running | 38s")
        #expect(
            RunProgressLine.text(sample(0, tasks: 1)) == "1 task done | 0 rows/s | 0 rows deleted | "
                + "backlog 0 queued, 0 running | 0s")
        #expect(RunProgressLine.text(sample(5, queued: nil, running: nil)).contains("| backlog ? |"))
    }

    @Test func theRateIsOverTheLastIntervalWhenThereIsOne() {
        let previous = sample(10, rows: 10_000)
        #expect(RunProgressLine.rate(sample(12, rows: 13_000), previous: previous) == 1_500)
        #expect(RunProgressLine.rate(sample(12, rows: 13_000), previous: nil) == 1_083)
        #expect(RunProgressLine.rate(sample(10, rows: 10_000), previous: previous) == 0, "an empty interval")
        #expect(RunProgressLine.rate(sample(0, rows: 5), previous: nil) == 0, "no time yet")
        let half = RunProgressSample(
            elapsed: .milliseconds(10_500), tasksDone: 0, rowsDeleted: 10_250, queued: 0, running: 0)
        #expect(RunProgressLine.rate(half, previous: previous) == 500)
    }

    @Test func numbersAreGroupedAndDurationsShort() {
        #expect(
            [0, 7, 999, 1_000, 12_345, 999_999, 1_000_000, -4_321].map(RunProgressLine.grouped) == [
                "0", "7", "999", "1,000", "12,345", "999,999", "1,000,000", "-4,321",
            ])
        #expect(
            [0, 59, 60, 187, 3_599, 3_600, 7_500, 90_000].map { RunProgressLine.duration(.seconds($0)) } == [
                "0s", "59s", "1m00s", "3m07s", "59m59s", "1h00m", "2h05m", "25h00m",
            ])
        #expect(RunProgressLine.duration(.milliseconds(1_999)) == "1s")
    }

    @Test func redrawsInPlaceAndLeavesTheLastLine() {
        #expect(RunProgressLine.redraw("x") == "\r\u{1B}[Kx\r")
        #expect(RunProgressLine.finish("x") == "\r\u{1B}[Kx\n")
    }

    @Test func drawsOnStandardErrorElseStandardOutputElseNowhere() {
        #expect(
            RunProgressTarget.choose(standardErrorIsTerminal: true, standardOutputIsTerminal: true) == .standardError)
        #expect(
            RunProgressTarget.choose(standardErrorIsTerminal: true, standardOutputIsTerminal: false) == .standardError)
        #expect(
            RunProgressTarget.choose(standardErrorIsTerminal: false, standardOutputIsTerminal: true) == .standardOutput)
        #expect(RunProgressTarget.choose(standardErrorIsTerminal: false, standardOutputIsTerminal: false) == nil)
    }
}

@Suite struct RunProgressTerminalTests {

    /// The same work twice: through a pseudo-terminal (`script`), the line is drawn and its last
    /// drawing counts the run; through pipes, nothing of it appears.
    @Test func theLineIsDrawnOnATerminalOnly() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try ExampleApplication.load(on: connection, tenants: 2, scale: 300)
            let path = try ExampleApplication.configuration(url: database.url)
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(try LetheProcess.run(["policy", "sync", "--config", path]).status == 0)
            #expect(try LetheProcess.run(["account", "add", "1", "2", "--config", path]).status == 0)
            try connection.execute(
                "SELECT lethe.set_policy(a::text, t.name, t.min_interval) FROM generate_series(1, 2) a, lethe.entity_types t WHERE t.deletes"
            )

            // On a terminal: script(1) gives lethe a pseudo-terminal for both streams.
            let lethe = try LetheProcess.executablePath()
            let (status, screen) = try ExternalTool.run(
                "/usr/bin/script",
                [
                    "-q", "-e", "-c",
                    "/usr/bin/env -i PATH=/usr/bin:/bin '\(lethe)' run --until-idle --config '\(path)'", "/dev/null",
                ])
            #expect(status == 0, "\(screen)")
            let deleted: Int = try connection.scalar(
                "SELECT coalesce(sum(total_rows + blob_rows), 0)::int FROM lethe.deletion_log")
            #expect(deleted > 0)
            #expect(screen.contains("\r\u{1B}[K"), "\(screen)")
            // The last drawing stays, ended by a newline (the terminal shows it as CR LF).
            let last = try #require(
                screen.components(separatedBy: "\r\u{1B}[K").last?.components(separatedBy: "\r\n").first, "\(screen)")
            let tasks = Int(last.prefix { $0.isNumber }) ?? 0
            #expect(tasks > 0 && last.contains(" done | "), "\(last)")
            let rowsText = last.components(separatedBy: " rows deleted").first?.split(separator: " ").last ?? ""
            let rows = Int(rowsText.replacingOccurrences(of: ",", with: "")) ?? 0
            #expect(rows > 0 && rows <= deleted, "\(last) (deleted \(deleted))")
            #expect(last.contains("backlog 0 queued, 0 running"), "\(last)")

            // Through pipes: not one character of it.
            try connection.execute("UPDATE lethe.retention_runs SET next_run_at = now()")
            let piped = try LetheProcess.run(["run", "--until-idle", "--config", path])
            #expect(piped.status == 0, "\(piped.output)")
            #expect(!piped.output.contains("\r") && !piped.output.contains("\u{1B}"), "\(piped.output)")
            #expect(!piped.output.contains("rows/s") && !piped.output.contains("tasks done"), "\(piped.output)")
        }
    }
}
