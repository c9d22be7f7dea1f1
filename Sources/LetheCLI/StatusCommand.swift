import ArgumentParser
import Foundation
import LetheConfiguration
import Store

/// `lethe status`: the queue, the processes and the failures at a glance.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the queue, the retention backlog, workers, coordinators, the backup log and failures.",
        discussion: """
            Reads lethe.queue_summary, lethe.retention_backlog, lethe.worker_status, \
            lethe.failures, lethe.backup_log and lethe.archive_status in one snapshot (the \
            backlog counts expired rows in the application's tables, through their \
            (account, clock) indexes).

            Exit status 0 whatever the state; --json prints the same as one JSON object.
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print JSON instead of tables.") var json = false

    func run() async throws {
        let context = try CommandContext(global, label: "lethe.status")
        let report = try await context.withDatabase(name: "lethe-status") { try StatusReport.read(on: $0) }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.dateEncodingStrategy = .iso8601
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(Self.render(report))
        }
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
                "Retention (lethe.retention_backlog; why accounts are blocked: lethe.retention_status)\n"
                    + table.rendered)
        }
        if report.processes.isEmpty {
            sections.append("Processes: none registered (start `lethe coordinator` and `lethe worker`)")
        } else {
            var table = TextTable("ROLE", "HOST", "PID", "STATUS", "LEADER", "SLOTS", "RUNNING", "LAST SEEN")
            for line in report.processes {
                table.add(
                    line.role, line.host, "\(line.pid)", line.status, line.isLeader ? "yes" : "",
                    line.role == "worker" ? "\(line.slots)" : "", "\(line.runningTasks)",
                    HumanText.age(seconds: line.silentSeconds) + " ago")
            }
            let leaders = report.processes.filter(\.isLeader).count
            let leaderNote = leaders == 0 ? "\nno coordinator leads: nothing is scheduled, rescued or pruned" : ""
            sections.append("Processes (lethe.worker_status)\n" + table.rendered + leaderNote)
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
