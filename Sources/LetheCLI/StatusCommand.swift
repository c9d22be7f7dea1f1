import ArgumentParser
import Foundation
import LetheConfiguration
import Retention
import Store

/// `lethe status`: the queue, the processes and the failures at a glance.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the queue, the retention backlog, workers, coordinators, the backup log and failures.",
        discussion: """
            Reads lethe.queue_summary, the retention backlog, lethe.worker_status, \
            lethe.failures, lethe.backup_log and lethe.archive_status in one snapshot. The \
            backlog comes from lethe.retention_backlog_snapshot, which the leading coordinator \
            refreshes every coordinator.backlog_interval (default 5m), while it is younger than \
            two intervals; otherwise from the live lethe.retention_backlog, which counts \
            expired rows in the application's tables (seconds or more on thousands of \
            accounts). The retention heading says which. A worker that slows or pauses \
            retention for the database's health (throttle.*) shows the reasons and for how \
            long in the THROTTLED column, and why in words below the table \
            (lethe.throttled_workers).

            Exit status 0 whatever the state; --json prints the same as one JSON object.

            --check judges instead, for cron and Kubernetes exec probes: one line per problem \
            and exit status 1 (dead tasks; no live leading coordinator; no live worker; an \
            account's oldest expired row behind policy by more than --max-behind; archive files \
            that failed to upload or delete; archive jobs not uploaded --max-behind after they \
            were created; a backlog snapshot missing or stale while the leader should refresh \
            it, BEHIND then being judged on the live view), else one OK line and exit status \
            0. A throttle is the database protecting itself, not a problem: --check does not \
            fail on it (a long one shows as BEHIND). It reads views only, so role \
            lethe_monitor may run it. With --json it prints {"ok", "problems", "facts"}.

            --watch redraws every --interval until Ctrl-C (on a terminal; otherwise it prints \
            each report after the last).
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print JSON instead of tables.") var json = false
    @Flag(help: "Print one line per problem and exit 1 when there is one (else one OK line, exit 0).")
    var check = false
    @Option(
        name: .customLong("max-behind"),
        help: ArgumentHelp(
            "With --check: how far behind policy an account's oldest expired row (and how old an archive job not "
                + "yet uploaded) may be (default \(StatusCheck.defaultMaxBehind)).",
            valueName: "duration"))
    var maxBehindText: String?
    @Flag(help: "Redraw every --interval until interrupted.") var watch = false
    @Option(help: ArgumentHelp("With --watch: time between reports (default 5s).", valueName: "duration"))
    var interval: String?

    var maxBehind: Duration { DurationText.parse(maxBehindText ?? StatusCheck.defaultMaxBehind) ?? .seconds(86_400) }
    var pause: Duration { interval.flatMap(DurationText.parse) ?? .seconds(5) }

    func validate() throws {
        if let text = maxBehindText {
            guard check else { throw ValidationError("--max-behind applies to --check only") }
            guard let value = DurationText.parse(text), value > .zero else {
                throw ValidationError(
                    "--max-behind \(text) is not a positive duration; accepted: \(DurationText.accepted)")
            }
        }
        if let text = interval {
            guard watch else { throw ValidationError("--interval applies to --watch only") }
            guard let value = DurationText.parse(text), value >= .seconds(1) else {
                throw ValidationError(
                    "--interval \(text) is not a duration of at least 1s; accepted: \(DurationText.accepted)")
            }
        }
    }

    func run() async throws {
        let context = try CommandContext(global, label: "lethe.status")
        guard watch else {
            let (text, healthy) = try await report(context)
            print(text)
            if !healthy { throw ExitCode(1) }
            return
        }
        let terminal = isatty(STDOUT_FILENO) == 1
        while !Task.isCancelled {
            let text: String
            do {
                text = try await report(context).text
            } catch {
                text = "lethe status: \(error)"
            }
            let stamp =
                "lethe status, \(HumanText.timestamp(Date())), every \(DurationText.format(pause)) (Ctrl-C ends)"
            // Home and clear the screen on a terminal; a pipe gets each report after the last.
            // Written unbuffered: a pipe sees each report as it comes.
            let screen = (terminal ? "\u{1B}[H\u{1B}[2J" : "\n") + stamp + "\n\n" + text + "\n"
            FileHandle.standardOutput.write(Data(screen.utf8))
            try await Task.sleep(for: pause)
        }
    }

    /// One report as text and whether it passes (always true without --check).
    func report(_ context: CommandContext) async throws -> (text: String, healthy: Bool) {
        if check {
            let maxBehind = self.maxBehind
            let facts = try await context.withDatabase(name: "lethe-status") {
                try StatusCheckFacts.read(on: $0, maxBehind: maxBehind)
            }
            let problems = StatusCheck.problems(facts, maxBehind: maxBehind)
            if json {
                return (
                    try JSONOutput.text(CheckDocument(ok: problems.isEmpty, problems: problems, facts: facts)),
                    problems.isEmpty
                )
            }
            return (
                problems.isEmpty ? StatusCheck.okLine(facts, maxBehind: maxBehind) : problems.joined(separator: "\n"),
                problems.isEmpty
            )
        }
        let report = try await context.withDatabase(name: "lethe-status") { try StatusReport.read(on: $0) }
        return (json ? try JSONOutput.text(report) : Self.render(report), true)
    }

    /// `status --check --json`.
    struct CheckDocument: Encodable {
        var ok: Bool
        var problems: [String]
        var facts: StatusCheckFacts
    }

    static func render(_ report: StatusReport) -> String {
        var sections: [String] = []
        if report.queue.isEmpty {
            sections.append("Queue: empty")
        } else {
            var table = TextTable("KIND", "STATE", "TASKS", "DUE", "OLDEST DUE")
            for line in report.queue {
                table.add(
                    line.kind, line.state, "\(line.tasks)", "\(line.due)",
                    line.oldestDueSeconds.map { HumanText.age(seconds: $0) } ?? "-")
            }
            sections.append("Queue (lethe.queue_summary)\n" + table.rendered)
        }
        if !report.retention.isEmpty {
            var table = TextTable(
                "TYPE", "ACCOUNTS RUNNING", "BLOCKED", "HELD", "EXPIRED ROWS", "BEHIND BY", "DELETED 24H")
            for line in report.retention {
                table.add(
                    line.entityType, "\(line.running)", "\(line.blocked)", "\(line.held)", "\(line.expiredRows)",
                    line.behindSeconds.map { HumanText.age(seconds: $0) } ?? "-", "\(line.deletedLastDay)")
            }
            sections.append(
                "Retention (\(retentionSource(report.backlog)); why accounts are blocked: lethe.retention_status)\n"
                    + table.rendered)
        }
        if report.processes.isEmpty {
            sections.append("Processes: none registered (start `lethe coordinator` and `lethe worker`)")
        } else {
            var table = TextTable(
                "ROLE", "HOST", "PID", "STATUS", "LEADER", "SLOTS", "RUNNING", "LAST SEEN", "THROTTLED")
            for line in report.processes {
                table.add(
                    line.role, line.host, "\(line.pid)", line.status, line.isLeader ? "yes" : "",
                    line.role == "worker" ? "\(line.slots)" : "", "\(line.runningTasks)",
                    HumanText.age(seconds: line.silentSeconds) + " ago", throttled(line))
            }
            let leaders = report.processes.filter(\.isLeader).count
            let leaderNote = leaders == 0 ? "\nno coordinator leads: nothing is scheduled, rescued or pruned" : ""
            let why = report.processes.filter { !$0.throttledReasons.isEmpty }.map {
                "\nworker \($0.host) pid \($0.pid) throttles retention: \($0.throttleDetail ?? "-")"
            }
            sections.append("Processes (lethe.worker_status)\n" + table.rendered + leaderNote + why.joined())
        }
        if report.failures.isEmpty {
            sections.append("Failures: none")
        } else {
            var table = TextTable("ID", "KIND", "ACCOUNT", "TYPE", "STATE", "ATTEMPTS", "LAST ERROR")
            for line in report.failures {
                table.add(
                    "\(line.id)", line.kind, line.accountID ?? "-", line.entityType ?? "-", line.state,
                    "\(line.attempts)", line.lastError.map { HumanText.clip($0, 70) } ?? "")
            }
            sections.append(
                "Failures (lethe.failures): \(report.retrying) retrying, \(report.dead) dead; newest:\n"
                    + table.rendered)
        }
        if let backupLog = report.backupLog { sections.append(contentsOf: Self.render(backupLog)) }
        sections.append("Schema lethe at version \(report.schemaVersion)")
        return sections.joined(separator: "\n\n")
    }

    /// The THROTTLED column: the reasons and for how long (lethe.throttled_workers).
    static func throttled(_ line: StatusReport.ProcessLine) -> String {
        guard !line.throttledReasons.isEmpty else { return "" }
        return line.throttledReasons.joined(separator: ",")
            + (line.throttledForSeconds.map { " for " + HumanText.age(seconds: max($0, 0)) } ?? "")
    }

    /// Where the retention section came from.
    static func retentionSource(_ backlog: BacklogSnapshot.Freshness?) -> String {
        guard let backlog else { return "lethe.retention_backlog" }
        if backlog.source == .snapshot, let age = backlog.ageSeconds {
            return "lethe.retention_backlog_snapshot, measured \(HumanText.age(seconds: age)) ago"
        }
        switch backlog.problem {
        case "missing": return "lethe.retention_backlog, live: no leader has refreshed the snapshot yet"
        case "stale": return "lethe.retention_backlog, live: the snapshot is stale (older than two refresh intervals)"
        default: return "lethe.retention_backlog, live: the snapshot is off"
        }
    }

    /// Accounts shown in the text output (the stalest uploads first); --json has them all.
    static let accountLimit = 20

    static func render(_ log: StatusReport.BackupLog) -> [String] {
        if log.statuses.isEmpty && log.accounts.isEmpty { return ["Backup log: empty (no account archives)"] }
        var sections: [String] = []
        let counts = log.statuses.map { "\($0.files) \($0.status) (\(ByteSizeText.format($0.totalSize)))" }
        sections.append(
            "Backup log (lethe.backup_log): " + (counts.isEmpty ? "no files yet" : counts.joined(separator: ", ")))
        if !log.failedFiles.isEmpty {
            var table = TextTable("ID", "ACCOUNT", "FILE", "STATUS", "ATTEMPTS", "ERROR")
            for file in log.failedFiles {
                table.add(
                    "\(file.id)", file.accountID, file.fileName, file.status, "\(file.attempts)",
                    file.error.map { HumanText.clip($0, 60) } ?? "")
            }
            sections.append("Failed archive files (lethe archive retry ID), newest:\n" + table.rendered)
        }
        if !log.accounts.isEmpty {
            var table = TextTable("ACCOUNT", "SITES", "OPEN JOBS", "FAILED FILES", "LAST UPLOAD", "NEXT RUN")
            for line in log.accounts.prefix(accountLimit) {
                table.add(
                    line.accountID, "\(line.sites)", "\(line.openJobs)", "\(line.failedFiles)",
                    line.lastUpload.map(HumanText.timestamp) ?? "never",
                    line.nextRunAt.map(HumanText.timestamp) ?? "-")
            }
            let more = log.accounts.count - accountLimit
            sections.append(
                "Archiving accounts (lethe.archive_status), stalest upload first:\n" + table.rendered
                    + (more > 0 ? "\n… and \(more) more (--json lists them all)" : ""))
        }
        return sections
    }
}
