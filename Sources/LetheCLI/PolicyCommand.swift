import ArgumentParser
import Foundation
import LetheConfiguration
import Postgres
import Retention
import Store

/// `lethe policy …`: entity types, per-account intervals, operator switches, tiers, preview.
struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Manage retention policies: types, intervals, operator switches, tiers; preview deletions.",
        discussion: """
            Intervals are written 12h, 30d, 2w, 6mo, 1y (months and years are calendar months \
            in UTC). Above an entity type's max is refused; below its min is raised to min.
            """,
        subcommands: [
            Types.self, Sync.self, SetPolicy.self, Disable.self, Enable.self, Show.self, Preview.self, Tier.self,
            Forget.self,
        ])

    struct AccountAndType: ParsableArguments {
        @Option(help: "The account id.") var account: String
        @Option(name: .customLong("type"), help: "The entity type.") var entityType: String
    }

    struct SetPolicy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Set an account's own interval for a type (overrides its tier).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: AccountAndType
        @Option(help: "The interval: 12h, 30d, 2w, 6mo, 1y …") var interval: String

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.policy")
            let asked = try PolicyCall.interval(interval, option: "--interval")
            let (account, type) = (target.account, target.entityType)
            let change = try await PolicyCall.run(context) {
                try PolicyAdministration().setPolicy(account: account, entityType: type, interval: asked, on: $0)
            }
            let shown = PolicyCall.show(change.effective)
            print(
                change.raisedToMinimum
                    ? "\(interval) is below the minimum for \(type): raised to \(shown) for account \(account)"
                    : "account \(account) keeps \(type) for \(shown)")
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Operator: disable one policy of an account (a tenant admin cannot re-enable it).")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: AccountAndType
        @Option(help: "Why.") var reason: String

        func run() async throws {
            let (account, type, reason) = (target.account, target.entityType, self.reason)
            try await PolicyCall.run(global, label: "lethe.policy") {
                try PolicyAdministration().disablePolicy(account: account, entityType: type, reason: reason, on: $0)
            }
            print("\(type) retention disabled for account \(account)")
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Operator: re-enable one policy of an account.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var target: AccountAndType

        func run() async throws {
            let (account, type) = (target.account, target.entityType)
            try await PolicyCall.run(global, label: "lethe.policy") {
                try PolicyAdministration().enablePolicy(account: account, entityType: type, on: $0)
            }
            print("\(type) retention enabled for account \(account)")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an account's policies (as lethe account show).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The account id.") var account: String

        func run() async throws {
            try await AccountCommand.show(account, context: try CommandContext(global, label: "lethe.policy"))
        }
    }

    struct Preview: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what retention would delete now for an account, per type, without deleting anything.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "The account id.") var account: String
        @Option(name: .customLong("type"), help: "Only this entity type.") var entityType: String?
        @Flag(help: "Print a JSON object: account_id and entity_types (rows now per table, oldest, newest, note).")
        var json = false

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.policy")
            let registry = try await context.registry()
            if let entityType, registry.entityTypes[entityType] == nil {
                throw UsageError(
                    "--type \(entityType) is not a configured entity type; configured: "
                        + registry.entityTypes.keys.sorted().joined(separator: ", "))
            }
            let types = registry.registry.entityTypes.map(\.name).filter { entityType == nil || $0 == entityType }
                .compactMap { registry.entityTypes[$0] }
            let account = self.account
            let (previews, status) = try await PolicyCall.run(context) { connection in
                try AccountAdministration().requireAccount(account, on: connection)
                let previews = try types.map { try RetentionPreview.compute($0, account: account, on: connection) }
                return (previews, try PolicyAdministration().runStatus(account: account, on: connection))
            }
            func note(_ preview: RetentionPreview) -> String? {
                status.first { $0.entityType == preview.entityType }.map { status in
                    status.runnable
                        ? (status.held ? "held: nothing is deleted" : "") : "not run: \(status.blockedReason ?? "")"
                }
            }
            if json {
                return try JSONOutput.print(
                    PreviewDocument(
                        accountID: account,
                        entityTypes: previews.map { preview in
                            PreviewDocument.EntityType(
                                entityType: preview.entityType, rowsNow: preview.rows.first?.count ?? 0,
                                oldest: preview.oldest, newest: preview.newest,
                                tables: preview.rows.map { .init(table: $0.table, rows: $0.count) },
                                note: note(preview).flatMap { $0.isEmpty ? nil : $0 })
                        }))
            }
            var table = TextTable("TYPE", "ROWS NOW", "OLDEST", "NEWEST", "TABLE ROWS", "NOTE")
            for preview in previews {
                let note = note(preview)
                table.add(
                    preview.entityType, "\(preview.rows.first?.count ?? 0)",
                    preview.oldest.map(HumanText.timestamp) ?? "-", preview.newest.map(HumanText.timestamp) ?? "-",
                    preview.rows.map { "\($0.table) \($0.count)" }.joined(separator: ", "), note ?? "")
            }
            print("account \(account): what retention would delete now (nothing is deleted by this command)")
            print(table.rendered)
        }
    }

    /// `policy preview --json`.
    struct PreviewDocument: Encodable {
        struct Table: Encodable {
            var table: String
            var rows: Int
        }
        struct EntityType: Encodable {
            var entityType: String
            var rowsNow: Int
            var oldest: Date?
            var newest: Date?
            var tables: [Table]
            /// Why nothing would be deleted (held, not run), or nil.
            var note: String?
        }
        var accountID: String
        var entityTypes: [EntityType]
    }

    struct Tier: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Tiers: named sets of per-type intervals assigned to many accounts at once.",
            subcommands: [Define.self, SetInterval.self, Assign.self, List.self])

        struct Define: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create (or describe) a tier.")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "The tier name (gold, silver …).") var name: String
            @Option(help: "A description.") var description = ""

            func run() async throws {
                try await PolicyCall.run(global, label: "lethe.policy") { [name, description] in
                    try PolicyAdministration().defineTier(name, description: description, on: $0)
                }
                print("tier \(name) defined")
            }
        }

        struct SetInterval: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "set", abstract: "Set a tier's interval for a type.")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "The tier name.") var name: String
            @Option(name: .customLong("type"), help: "The entity type.") var entityType: String
            @Option(help: "The interval: 12h, 30d, 2w, 6mo, 1y …") var interval: String

            func run() async throws {
                let context = try CommandContext(global, label: "lethe.policy")
                let asked = try PolicyCall.interval(interval, option: "--interval")
                let (name, type) = (self.name, entityType)
                let change = try await PolicyCall.run(context) {
                    try PolicyAdministration().setTierInterval(name, entityType: type, interval: asked, on: $0)
                }
                let shown = PolicyCall.show(change.effective)
                print(
                    change.raisedToMinimum
                        ? "\(interval) is below the minimum for \(type): tier \(name) keeps it \(shown)"
                        : "tier \(name) keeps \(type) for \(shown)")
            }
        }

        struct Assign: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Assign a tier to accounts.")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "The tier name.") var name: String
            @Argument(help: "Account ids.") var accounts: [String]

            func run() async throws {
                let changed = try await PolicyCall.run(global, label: "lethe.policy") { [name, accounts] in
                    try PolicyAdministration().assignTier(name, to: accounts, on: $0)
                }
                print("tier \(name) assigned to \(changed) account\(changed == 1 ? "" : "s")")
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List tiers with their intervals.")
            @OptionGroup var global: GlobalOptions

            func run() async throws {
                let rows = try await PolicyCall.run(global, label: "lethe.policy") {
                    try PolicyAdministration().tiers(on: $0)
                }
                var table = TextTable("TIER", "ACCOUNTS", "INTERVALS")
                for tier in rows { table.add(tier.name, "\(tier.accounts)", tier.intervals) }
                print(rows.isEmpty ? "no tiers (define one: lethe policy tier define gold)" : table.rendered)
            }
        }
    }
}
