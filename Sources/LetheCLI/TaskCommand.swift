import ArgumentParser
import Foundation
import LetheConfiguration
import Postgres
import Retention
import Store
import Worker

/// `lethe task …`: look at and act on individual tasks.
struct TaskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "task",
        abstract: "List, enqueue, retry or cancel tasks.",
        subcommands: [List.self, Enqueue.self, Retry.self, Cancel.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tasks, newest first.")
        @OptionGroup var global: GlobalOptions
        @Option(
            name: .customLong("state"),
            help: ArgumentHelp(
                "Only tasks in this state (repeatable): \(TaskState.allCases.map(\.rawValue).joined(separator: ", ")).",
                valueName: "state"))
        var states: [String] = []
        @Option(
            name: .customLong("kind"), help: ArgumentHelp("Only tasks of this kind (repeatable).", valueName: "kind"))
        var kinds: [String] = []
        @Option(help: ArgumentHelp("Only this account's tasks.", valueName: "id"))
        var account: String?
        @Option(help: "At most this many.")
        var limit = 50
        @Flag(help: "Print a JSON array of tasks (every column of lethe.tasks but the payload).") var json = false

        func validate() throws {
            for state in states where TaskState(rawValue: state) == nil {
                throw ValidationError(
                    "--state \(state) is not a task state; accepted: "
                        + TaskState.allCases.map(\.rawValue).joined(separator: ", "))
            }
            if limit < 1 { throw ValidationError("--limit \(limit) must be at least 1") }
        }

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.task")
            var filter = TaskAdministration.Filter()
            filter.states = states.compactMap(TaskState.init(rawValue:))
            filter.kinds = kinds
            filter.accountID = account
            filter.limit = limit
            let tasks = try await context.withDatabase(name: "lethe-task") { [filter] in
                try TaskAdministration().list(filter, on: $0)
            }
            if json { return try JSONOutput.print(tasks) }
            var table = TextTable("ID", "KIND", "ACCOUNT", "TYPE", "STATE", "ATTEMPTS", "RUN AT", "LAST ERROR")
            for task in tasks {
                table.add(
                    "\(task.id)", task.kind, task.accountID ?? "-", task.entityType ?? "-", task.state.rawValue,
                    "\(task.attempts)/\(task.maxAttempts)", HumanText.timestamp(task.runAt),
                    task.lastError.map { HumanText.clip($0) } ?? "")
            }
            print(tasks.isEmpty ? "no tasks match" : table.rendered)
        }
    }

    struct Enqueue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enqueue tasks by hand (e.g. noop tasks to smoke-test a deployment).")
        @OptionGroup var global: GlobalOptions
        @Argument(
            help: "The task kind (this build runs: \(LetheServices.kinds.joined(separator: ", "))).")
        var kind: String
        @Option(help: ArgumentHelp("The account the task is for.", valueName: "id"))
        var account: String?
        @Option(name: .customLong("entity-type"), help: ArgumentHelp("The entity type it is for.", valueName: "name"))
        var entityType: String?
        @Option(help: ArgumentHelp("JSON object handed to the task.", valueName: "json"))
        var payload = "{}"
        @Option(help: "Enqueue this many (each gets its own account suffix -1, -2, … when more than one).")
        var count = 1
        @Option(help: "Lower runs first.")
        var priority = 0

        func validate() throws {
            let known = LetheServices.kinds
            guard known.contains(kind) else {
                throw ValidationError("unknown task kind \(kind); accepted: \(known.joined(separator: ", "))")
            }
            guard (try? JSONSerialization.jsonObject(with: Data(payload.utf8))) is [String: Any] else {
                throw ValidationError("--payload \(payload) is not a JSON object; expected e.g. {\"sleep_ms\": 10}")
            }
            guard (1...100_000).contains(count) else {
                throw ValidationError("--count \(count) is out of range; expected 1 to 100000 tasks at a time")
            }
        }

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.task")
            let tasks = (1...count).map { index in
                NewTask(
                    kind: TaskKind(kind), accountID: count == 1 ? account : "\(account ?? "task")-\(index)",
                    entityType: entityType, payload: payload, priority: priority)
            }
            let queue = context.configuration.taskQueue()
            var inserted = 0
            for chunk in stride(from: 0, to: tasks.count, by: 10_000).map({
                Array(tasks[$0..<min($0 + 10_000, tasks.count)])
            }) {
                inserted += try await context.withDatabase(name: "lethe-task") { try queue.enqueue(chunk, on: $0) }
            }
            print("enqueued \(inserted) of \(count) (\(count - inserted) already had an unfinished task)")
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put failed, dead or cancelled tasks back on the queue now, with fresh attempts.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Task ids.") var ids: [Int64]

        func run() async throws {
            try await TaskCommand.act(global, ids: ids, verb: "retried", notDone: "not failed, dead or cancelled") {
                try TaskAdministration().retry($0, on: $1)
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel unfinished tasks (a running one's worker stops at its next heartbeat).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Task ids.") var ids: [Int64]

        func run() async throws {
            try await TaskCommand.act(global, ids: ids, verb: "cancelled", notDone: "already finished or unknown") {
                try TaskAdministration().cancel($0, on: $1)
            }
        }
    }

    /// Runs `action` on `ids` and reports what it changed and what it left alone.
    static func act(
        _ global: GlobalOptions, ids: [Int64], verb: String, notDone: String,
        _ action: @escaping @Sendable ([Int64], Connection) throws -> [Int64]
    ) async throws {
        let context = try CommandContext(global, label: "lethe.task")
        let done = try await context.withDatabase(name: "lethe-task") { try action(ids, $0) }
        report(verb: verb, done: done, asked: ids, notDone: notDone)
    }

    static func report(verb: String, done: [Int64], asked: [Int64], notDone: String) {
        let skipped = Set(asked).subtracting(done).sorted()
        print(
            "\(verb) \(done.count) task\(done.count == 1 ? "" : "s")\(done.isEmpty ? "" : ": " + done.map(String.init).joined(separator: ", "))"
        )
        if !skipped.isEmpty {
            print("left alone (\(notDone)): \(skipped.map(String.init).joined(separator: ", "))")
        }
    }
}
