import ArgumentParser
import Foundation
import LetheConfiguration
import Postgres
import Store

/// `lethe account …`: accounts (tenants), their state, operator switches, notices and holds.
struct AccountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "account",
        abstract:
            "Manage accounts: add, list, show, state, operator switches, notice window, holds, archiving, backup sites.",
        discussion: """
            Each command calls the SQL function an application would (lethe.add_account, \
            lethe.set_account_state, lethe.place_hold …), so the rules are the same from \
            psql, the application and this CLI. They use the registry in force (lethe policy sync).
            """,
        subcommands: [
            Add.self, List.self, Show.self, SetState.self, Disable.self, Enable.self, Notice.self, Hold.self,
            Release.self, Holds.self, ArchiveSettingsCommand.self, SiteCommand.self,
        ])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add accounts. Without --tier each gets every entity type's default in force today.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Account ids (the application's account key, as text).") var accounts: [String]
        @Option(help: "Assign this tier instead of copying the defaults.") var tier: String?
        @Option(help: "Notice window before deletions: week, day, same_day or never.") var notice = "week"

        func run() async throws {
            try await PolicyCall.run(global, label: "lethe.account") { [accounts, tier, notice] in
                try AccountAdministration().add(accounts, tier: tier, notice: notice, on: $0)
            }
            print(
                "added \(accounts.count) account\(accounts.count == 1 ? "" : "s")"
                    + (tier.map { " in tier \($0)" } ?? ""))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accounts.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let rows = try await PolicyCall.run(global, label: "lethe.account") {
                try AccountAdministration().list(on: $0)
            }
            var table = TextTable("ACCOUNT", "STATE", "TIER", "RETENTION", "NOTICE", "HOLDS", "TYPES RUNNING")
            for row in rows {
                table.add(
                    row.accountID, row.state, row.tier ?? "-", row.retentionDisabled ? "disabled" : "on", row.notice,
                    "\(row.activeHolds)", "\(row.typesRunning)")
            }
            print(rows.isEmpty ? "no accounts (add one: lethe account add ID)" : table.rendered)
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show an account's policies: the interval in force per type, and why retention does not run.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The account id.") var account: String
        @Flag(help: "Print a JSON object: account_id and policies (one object per entity type).") var json = false

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.account")
            try await AccountCommand.show(account, context: context, json: json)
        }
    }

    /// `account show --json`.
    struct ShowDocument: Encodable {
        var accountID: String
        var policies: [AccountPolicyStatus]
    }

    static func show(_ account: String, context: CommandContext, json: Bool = false) async throws {
        let rows = try await PolicyCall.run(context) { connection in
            let administration = AccountAdministration()
            try administration.requireAccount(account, on: connection)
            return try administration.policies(account: account, on: connection)
        }
        if json { return try JSONOutput.print(ShowDocument(accountID: account, policies: rows)) }
        var table = TextTable("TYPE", "INTERVAL", "FROM", "CUTOFF", "RUNS", "NEXT CHECK")
        for row in rows {
            let runs =
                row.runnable
                ? (row.held ? "held: \(row.holdReason ?? "")" : "yes")
                : "no: \(row.blockedReason ?? "")"
            table.add(
                row.entityType, PolicyCall.show(row.effectiveInterval), row.intervalSource,
                row.cutoff.map(HumanText.timestamp) ?? "-", runs, row.nextRunAt.map(HumanText.timestamp) ?? "-")
        }
        print(rows.isEmpty ? "account \(account): no entity types configured" : table.rendered)
    }

    struct SetState: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-state",
            abstract: "Set an account's state: active, suspended or deleted (no retention runs unless active).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The account id.") var account: String
        @Argument(help: "active, suspended or deleted.") var state: String

        func run() async throws {
            try await PolicyCall.run(global, label: "lethe.account") { [account, state] in
                try AccountAdministration().setState(account: account, state, on: $0)
            }
            print("account \(account) is now \(state)")
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Operator: disable all retention for an account (a tenant admin cannot re-enable it).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The account id.") var account: String
        @Option(help: "Why (kept with the account).") var reason: String

        func run() async throws {
            try await PolicyCall.run(global, label: "lethe.account") { [account, reason] in
                try AccountAdministration().disableRetention(account: account, reason: reason, on: $0)
            }
            print("retention disabled for account \(account)")
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Operator: re-enable retention for an account.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The account id.") var account: String

        func run() async throws {
            try await PolicyCall.run(global, label: "lethe.account") { [account] in
                try AccountAdministration().enableRetention(account: account, on: $0)
            }
            print("retention enabled for account \(account)")
        }
    }

    struct Notice: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set how long before deletion an account is warned: week, day, same_day or never.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The account id.") var account: String
        @Argument(help: "week, day, same_day or never.") var window: String

        func run() async throws {
            try await PolicyCall.run(global, label: "lethe.account") { [account, window] in
                try AccountAdministration().setNotice(account: account, window, on: $0)
            }
            print("account \(account): notice \(window)")
        }
    }

    struct Hold: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Place a legal hold: nothing of the account (or one type) is deleted while it lasts.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The account id.") var account: String
        @Option(name: .customLong("type"), help: "Only this entity type (default: the whole account).")
        var entityType: String?
        @Option(help: "Why (required).") var reason: String
        @Option(help: "When the hold ends by itself (ISO 8601, e.g. 2027-06-30T00:00:00Z); default: when released.")
        var until: String?

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.account")
            var end: Date?
            if let until {
                guard let date = ISO8601DateFormatter().date(from: until) else {
                    throw UsageError(
                        "--until \"\(until)\" is not a time; expected ISO 8601 such as 2027-06-30T00:00:00Z")
                }
                end = date
            }
            let (account, type, reason, stop) = (self.account, entityType, self.reason, end)
            let id = try await PolicyCall.run(context) {
                try AccountAdministration().placeHold(
                    account: account, entityType: type, reason: reason, until: stop, on: $0)
            }
            print("hold \(id) placed on account \(account)" + (type.map { " (\($0))" } ?? ""))
        }
    }

    struct Release: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Release a hold by its id.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The hold id (lethe account holds).") var hold: Int64

        func run() async throws {
            try await PolicyCall.run(global, label: "lethe.account") { [hold] in
                try AccountAdministration().releaseHold(hold, on: $0)
            }
            print("hold \(hold) released")
        }
    }

    struct Holds: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List active holds (of one account).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Only this account.") var account: String?

        func run() async throws {
            let rows = try await PolicyCall.run(global, label: "lethe.account") { [account] in
                try AccountAdministration().holds(account: account, on: $0)
            }
            var table = TextTable("HOLD", "ACCOUNT", "TYPE", "REASON", "BY", "SINCE", "UNTIL")
            for hold in rows {
                table.add(
                    "\(hold.id)", hold.accountID, hold.entityType ?? "all types", HumanText.clip(hold.reason, 40),
                    hold.placedBy, HumanText.timestamp(hold.placedAt),
                    hold.until.map(HumanText.timestamp) ?? "released by hand")
            }
            print(rows.isEmpty ? "no active holds" : table.rendered)
        }
    }
}
