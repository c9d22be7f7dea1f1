import ArgumentParser
import Foundation
import Store

/// `lethe status`: the queue, the processes and the failures at a glance.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the queue, the retention backlog, workers, coordinators and failures.",
        discussion: """
            Reads lethe.queue_summary, lethe.retention_backlog, lethe.worker_status and
            lethe.failures in one snapshot (the backlog counts expired rows in the
            application's tables, through their (account, clock) indexes).
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
        sections.append("Schema lethe at version \(report.schemaVersion)")
        return sections.joined(separator: "\n\n")
    }
}
