import ArgumentParser
import Foundation
import LetheCLI
import LetheConfiguration
import Logging
import Postgres
import Retention
import Store
import Synchronization

/// `lethe demo`: the whole retention flow on a throwaway local database with sample
/// tenants of the example contact-centre application (examples/contact-centre).
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the whole retention flow on a throwaway local database with sample tenants.",
        discussion: """
            Starts a private PostgreSQL (initdb on a Unix socket in a temporary directory), \
            loads the example application (examples/contact-centre), seeds tenants with two \
            years of skewed data, sets up tiers, policies, a hold and a suspended account, \
            previews, runs a coordinator and workers until nothing is due, and reports what \
            was deleted and why some accounts were not touched. With 6 tenants or more, \
            accounts 5 and 6 archive before deleting (5 to a file:// site, 6 to an sftp:// site \
            on a throwaway sshd on 127.0.0.1, or a second file:// site without sshd): the demo \
            runs the real lethe commands to set it up, shows the backup log, verifies the files \
            (lethe archive verify), approves the deletions and shows they came after the upload. \
            Everything (keys, sites, database) is removed at the end unless --keep.
            """)

    @Option(help: "Sample tenants to create.") var tenants = 12
    @Option(help: "Conversations of the largest tenant (tenant i gets about scale/i).") var scale = 2000
    @Option(help: "Worker slots.") var concurrency = 4
    @Flag(help: "Keep the database directory afterwards (the server is stopped either way).")
    var keep = false
    @Option(help: ArgumentHelp("The example application's directory.", valueName: "dir")) var example: String?

    func validate() throws {
        if tenants < 1 || tenants > 1000 { throw ValidationError("--tenants \(tenants) must be between 1 and 1000") }
        if scale < 10 { throw ValidationError("--scale \(scale) must be at least 10") }
        if concurrency < 1 { throw ValidationError("--concurrency \(concurrency) must be at least 1") }
    }

    func run() async throws {
        let exampleDirectory: URL
        if let example {
            exampleDirectory = URL(fileURLWithPath: example)
        } else if let found = BundledDirectory.locate("examples/contact-centre", containing: "lethe.yml") {
            exampleDirectory = found
        } else {
            throw UsageError(
                "cannot find examples/contact-centre (looked in "
                    + BundledDirectory.candidates("examples/contact-centre").joined(separator: ", ")
                    + "); run from the repository or pass --example DIR")
        }
        say("starting a throwaway PostgreSQL")
        let cluster = try DemoCluster.start()
        say("PostgreSQL is up in \(cluster.directory.path) (Unix socket only)")
        do {
            try await demo(cluster: cluster, example: exampleDirectory)
            cluster.stop(keep: keep)
        } catch {
            cluster.stop(keep: keep)
            throw error
        }
        say(keep ? "stopped; the database directory is kept: \(cluster.directory.path)" : "stopped and removed")
    }

    func say(_ line: String) { Console.line("==> \(line)") }

    func demo(cluster: DemoCluster, example: URL) async throws {
        let conninfo = cluster.conninfo()
        let setup = try Connection.connect(conninfo, applicationName: "lethe-demo")
        defer { setup.close() }
        try Migrator(files: try MigrationSet.resolve(flag: nil, configured: nil).files).apply(setup)
        say("schema lethe migrated")
        for file in ["schema.sql", "seed.sql"] {
            let sql = try String(contentsOf: example.appendingPathComponent(file), encoding: .utf8)
            try setup.executeScript(sql)
        }
        let started = ContinuousClock.now
        let rows = try setup.query("SELECT app.seed_demo($1::int, $2::int)", [tenants, scale])[0].decode(
            Int.self, at: 0)
        let conversations = try setup.query("SELECT count(*) FROM app.conversations")[0].decode(Int.self, at: 0)
        say(
            "seeded \(tenants) tenants: \(conversations) conversations, \(rows) rows in schema app "
                + "(\(Self.seconds(ContinuousClock.now - started)))")

        // A config of our own: the example's registry plus quick ticks for a short demo.
        let base = try String(contentsOf: example.appendingPathComponent("lethe.yml"), encoding: .utf8)
        let configPath = cluster.directory.appendingPathComponent("lethe.yml").path
        let archiving: DemoArchiving? =
            tenants >= Self.tenantsForArchiving
            ? try DemoArchiving(
                directory: cluster.directory.appendingPathComponent("archive"), accounts: Self.archivingAccounts,
                conninfo: conninfo, configPath: configPath)
            : nil
        defer { archiving?.stop() }
        try
            (base + "\ncoordinator:\n  tick_interval: 250ms\nworker:\n  poll_interval: 250ms\n"
            + (archiving?.configSection ?? ""))
            .write(toFile: configPath, atomically: true, encoding: .utf8)
        let options = try GlobalOptions.parse([
            "--config", configPath, "--database-url", conninfo, "--log-level", "warning",
        ])
        let context = try CommandContext(options, label: "lethe.demo")
        _ = try await context.syncRegistry(confirm: true, by: "lethe demo")
        let registry = try await context.registry()
        say(
            "synced \(registry.registry.entityTypes.count) entity types and \(registry.registry.blobStores.count) blob stores"
        )

        try setup.withTransaction { connection in try Self.accounts(tenants: tenants, on: connection) }
        say(
            "accounts: 1 on its own defaults; 2-3 gold, 4-6 silver; 7 keeps conversations 30d; 8 suspended; 9 on hold; 10 disabled by an operator"
        )
        try printPreview(registry: registry, account: "1", on: setup)
        if let archiving {
            let (file, sftp) = Self.archivingAccounts
            say(
                "accounts \(file) and \(sftp) archive before deleting: \(file) to a file:// site, \(sftp) to "
                    + (archiving.sftpUnavailable.map { "a second file:// site (no SFTP: \($0))" }
                        ?? "an sftp:// site on a throwaway sshd on 127.0.0.1"))
            try archiving.enable()
        } else {
            say("no archiving: it needs --tenants \(Self.tenantsForArchiving) or more")
        }

        say("running a coordinator and \(concurrency) worker slots until nothing is due")
        let before = try Self.deleted(on: setup)
        let runStarted = ContinuousClock.now
        try await runUntilIdle(context, registry: registry, conninfo: conninfo, since: before)
        let after = try Self.deleted(on: setup)
        say(
            "done in \(Self.seconds(ContinuousClock.now - runStarted)): \(after.rows - before.rows) rows deleted "
                + "in \(after.batches - before.batches) batches")
        if let archiving {
            let files = try archiving.checkUploaded(on: setup, say: say)
            try archiving.verifyAndApprove(files, say: say)
            say("running the coordinator and workers again: the approved archive jobs delete what they archived")
            let approved = try Self.deleted(on: setup)
            try await runUntilIdle(context, registry: registry, conninfo: conninfo, since: approved)
            try archiving.report(on: setup, say: say)
        }
        try report(on: setup)
    }

    /// The accounts that archive: the first to a file:// site, the second to an sftp:// one.
    static let archivingAccounts = (file: "5", sftp: "6")
    static let tenantsForArchiving = 6

    /// A coordinator and the worker pool until nothing is due, with a line a second of the
    /// rows deleted `since` a count.
    func runUntilIdle(
        _ context: CommandContext, registry: CompiledRegistry, conninfo: String, since before: (rows: Int, batches: Int)
    ) async throws {
        let pool = try LetheServices.workerPool(
            context,
            configuration: try LetheServices.workerConfiguration(
                context, options: try WorkerOptions.parse(["--concurrency", "\(concurrency)"]), untilIdle: true),
            registry: registry)
        let coordinator = try LetheServices.coordinator(context, untilIdle: true)
        let logger = context.logger
        let watcher = ConnectionThread(
            conninfo: conninfo, name: "lethe-demo-progress", applicationName: "lethe-demo-progress")
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await ServiceRunner.run([coordinator, pool], logger: logger) }
                group.addTask {
                    // A line a second until the services end; a failed count only skips a line.
                    while (try? await Task.sleep(for: .seconds(1))) != nil {
                        guard let (rows, batches) = try? await watcher.run({ try Self.deleted(on: $0) }) else {
                            continue
                        }
                        Console.line("    … \(rows - before.rows) rows deleted in \(batches - before.batches) batches")
                    }
                }
                try await group.next()
                group.cancelAll()
            }
        } catch {
            await watcher.shutdown()
            throw error
        }
        await watcher.shutdown()
    }

    /// Tiers, policies and the special cases the report explains.
    static func accounts(tenants: Int, on connection: Connection) throws {
        try connection.execute("SELECT lethe.define_tier('gold', 'keeps conversations two years')")
        try connection.execute("SELECT lethe.define_tier('silver', 'keeps conversations six months')")
        for (tier, type, interval) in [
            ("gold", "conversations", "2 years"), ("gold", "audit_log", "3 years"),
            ("gold", "webhook_calls", "90 days"),
            ("silver", "conversations", "6 mons"), ("silver", "audit_log", "1 year"),
            ("silver", "webhook_calls", "30 days"),
        ] {
            try connection.execute(
                "SELECT lethe.set_tier_interval($1, $2, $3::interval)", [tier, type, interval])
        }
        for account in 1...tenants {
            let tier: String? = (2...3).contains(account) ? "gold" : (4...6).contains(account) ? "silver" : nil
            try connection.execute("SELECT lethe.add_account($1, $2)", ["\(account)", tier])
        }
        if tenants >= 7 { try connection.execute("SELECT lethe.set_policy('7', 'conversations', '30 days')") }
        if tenants >= 8 { try connection.execute("SELECT lethe.set_account_state('8', 'suspended')") }
        if tenants >= 9 { try connection.execute("SELECT lethe.place_hold('9', NULL, 'litigation: case 2026-114')") }
        if tenants >= 10 {
            try connection.execute("SELECT lethe.operator_set_retention_disabled('10', true, 'migration in progress')")
        }
    }

    static func deleted(on connection: Connection) throws -> (rows: Int, batches: Int) {
        try connection.query(
            "SELECT coalesce(sum(total_rows + blob_rows), 0)::int, count(*)::int FROM lethe.deletion_log")[0]
            .decode((Int, Int).self)
    }

    func printPreview(registry: CompiledRegistry, account: String, on connection: Connection) throws {
        say("preview for account \(account) (what would go now; nothing deleted yet):")
        var table = TextTable("TYPE", "ROWS", "OLDEST", "WITH CHILDREN")
        for type in registry.registry.entityTypes {
            guard let compiled = registry.entityTypes[type.name], type.deletes else { continue }
            let preview = try RetentionPreview.compute(compiled, account: account, on: connection)
            table.add(
                type.name, "\(preview.rows.first?.count ?? 0)", preview.oldest.map(HumanText.timestamp) ?? "-",
                preview.rows.dropFirst().map { "\($0.table) \($0.count)" }.joined(separator: ", "))
        }
        Console.line(table.rendered.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
    }

    func report(on connection: Connection) throws {
        say("deleted per account (lethe.deletion_log):")
        var deleted = TextTable("ACCOUNT", "ROWS", "BLOBS", "BATCHES", "TYPES")
        for row in try connection.query(
            """
            SELECT account_id, sum(total_rows)::int, sum(blob_rows)::int, count(*)::int,
                   string_agg(DISTINCT entity_type, ', ')
            FROM lethe.deletion_log GROUP BY account_id ORDER BY account_id::int
            """)
        {
            let (account, rows, blobs, batches, types) = try row.decode((String, Int, Int, Int, String).self)
            deleted.add(account, "\(rows)", "\(blobs)", "\(batches)", types)
        }
        Console.line(deleted.rendered.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
        say("not run, and why (lethe.retention_status):")
        var blocked = TextTable("ACCOUNT", "TYPES", "REASON")
        for row in try connection.query(
            """
            SELECT account_id, count(*)::int, coalesce(blocked_reason, 'held: ' || hold_reason)
            FROM lethe.retention_status
            WHERE deletes AND (NOT runnable OR held)
            GROUP BY account_id, 3 ORDER BY account_id::int, 3
            """)
        {
            let (account, types, reason) = try row.decode((String, Int, String).self)
            blocked.add(account, "\(types)", reason)
        }
        Console.line(blocked.rendered.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
        let (backlog, upcoming, notices, orphans) = try connection.query(
            """
            SELECT (SELECT coalesce(sum(expired_rows), 0)::int FROM lethe.retention_backlog WHERE runnable AND NOT held),
                   (SELECT coalesce(sum(rows), 0)::int FROM lethe.upcoming_deletions),
                   (SELECT count(*)::int FROM lethe.notices),
                   (SELECT count(*)::int FROM lethe.orphan_blobs)
            """)[0].decode((Int, Int, Int, Int).self)
        say(
            "backlog left on running policies: \(backlog) rows; upcoming within notice windows: \(upcoming) rows "
                + "(\(notices) notices sent); \(orphans) orphan blobs waiting out their grace")
        say("try: SELECT * FROM lethe.retention_backlog; SELECT * FROM lethe.upcoming_deletions; lethe status")
    }

    static func seconds(_ duration: Duration) -> String {
        String(format: "%.1fs", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }
}
