import ArgumentParser
import Foundation
import LetheCLI
import LetheConfiguration
import Postgres
import Retention
import Store

/// `lethe bench fairness`
struct FairnessBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fairness",
        abstract: "Small tenants' finish times beside one huge tenant, against the same tenants alone.",
        discussion: """
            Builds a template database (lethe_bench_fair_…) with the example application: one \
            big tenant (account 1) with --big-conversations expired conversations and \
            --small-tenants tenants with --small-conversations each (--messages messages per \
            conversation), then clones it twice. On each clone it enqueues the due retention \
            tasks (the big tenant's first, so it is at the head of the queue) and runs a \
            coordinator and --processes workers (--concurrency slots each) until every small \
            tenant's task has finished: once with only the small tenants' policies set (alone), \
            once with the big tenant's too. A small tenant's finish time is its last deletion \
            batch's time (lethe.deletion_log) after the enqueue. Reports p50, p99 and max of \
            both runs, the difference against the task budget (worker.task_budget: the slice \
            after which a task yields to the back of the queue), how long the small tenants \
            waited for their first claim, and the big tenant's claims and rows meanwhile.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("big-conversations"), help: "Expired conversations of the big tenant.")
    var bigConversations = 180_000
    @Option(name: .customLong("small-tenants"), help: "Small tenants.") var smallTenants = 200
    @Option(name: .customLong("small-conversations"), help: "Expired conversations of each small tenant.")
    var smallConversations = 10
    @Option(help: "Messages per conversation.") var messages = 9
    @Option(help: "Worker processes.") var processes = 2
    @Option(help: "Slots per worker process (worker.concurrency).") var concurrency = 4
    @Option(name: .customLong("batch-size"), help: "Root rows per batch (the entity type's batch_size).")
    var batchSize = 5000
    @Option(
        name: .customLong("task-budget"),
        help: ArgumentHelp("worker.task_budget: a task's slice before it yields.", valueName: "duration"))
    var taskBudget = "10s"
    @Option(help: ArgumentHelp("The example application's directory.", valueName: "dir")) var example: String?
    @Flag(name: .customLong("keep-database"), help: "Do not drop the template database afterwards.")
    var keepDatabase = false

    var budget: Duration { DurationText.parse(taskBudget) ?? .seconds(10) }

    func validate() throws {
        guard (1...10_000_000).contains(bigConversations) else {
            throw ValidationError("--big-conversations \(bigConversations): 1 to 10000000")
        }
        guard (1...10_000).contains(smallTenants) else {
            throw ValidationError("--small-tenants \(smallTenants): 1 to 10000")
        }
        guard (1...100_000).contains(smallConversations) else {
            throw ValidationError("--small-conversations \(smallConversations): 1 to 100000")
        }
        guard (0...100).contains(messages) else { throw ValidationError("--messages \(messages): 0 to 100") }
        guard (1...16).contains(processes) else { throw ValidationError("--processes \(processes): 1 to 16") }
        guard (1...64).contains(concurrency) else { throw ValidationError("--concurrency \(concurrency): 1 to 64") }
        guard (1...100_000).contains(batchSize) else { throw ValidationError("--batch-size \(batchSize): 1 to 100000") }
        guard let budget = DurationText.parse(taskBudget),
            (Duration.milliseconds(100)...(.seconds(3600))).contains(budget)
        else { throw ValidationError("--task-budget \(taskBudget): expected 100ms to 1h, \(DurationText.accepted)") }
    }

    func run() async throws {
        let context = try CommandContext(global, label: "lethe.bench")
        guard
            let exampleDirectory = example.map(URL.init(fileURLWithPath:))
                ?? BundledDirectory.locate("examples/contact-centre", containing: "schema.sql")
        else { throw UsageError("cannot find examples/contact-centre; run from the repository or pass --example DIR") }
        let template = "lethe_bench_fair_\(UInt32.random(in: 0...UInt32.max))"
        let admin = context.connectionThread(name: "lethe-bench-admin")
        var databases = keepDatabase ? [] : [template]
        do {
            try await admin.run { try $0.execute("CREATE DATABASE \(SQLIdentifier.quote(template))") }
            let run = FairnessBenchRun(bench: self, conninfo: context.conninfo, admin: admin)
            try await run.build(template: template, example: exampleDirectory, context: context)
            var results: [FairnessBenchRun.Result] = []
            for withBig in [false, true] {
                let name = "\(template)_\(withBig ? "big" : "alone")"
                databases.append(name)
                try await admin.run {
                    try $0.execute(
                        "CREATE DATABASE \(SQLIdentifier.quote(name)) TEMPLATE \(SQLIdentifier.quote(template)) STRATEGY FILE_COPY"
                    )
                    try $0.execute("CHECKPOINT")
                }
                let result = try await run.measure(database: name, withBig: withBig)
                Console.line("  \(result.progressLine)")
                results.append(result)
                _ = try? await admin.run {
                    try $0.execute("DROP DATABASE IF EXISTS \(SQLIdentifier.quote(name)) WITH (FORCE)")
                }
            }
            BenchReport.block("\n" + FairnessBenchRun.report(results, budget: budget))
        } catch {
            await drop(databases, admin)
            await admin.shutdown()
            throw error
        }
        await drop(databases, admin)
        await admin.shutdown()
        if keepDatabase { Console.line("kept the template database \(template)") }
    }

    private func drop(_ names: [String], _ admin: ConnectionThread) async {
        for name in names {
            _ = try? await admin.run {
                try $0.execute("DROP DATABASE IF EXISTS \(SQLIdentifier.quote(name)) WITH (FORCE)")
            }
        }
    }
}
