import ArgumentParser
import BackupSites
import Foundation
import LetheConfiguration
import Postgres
import Retention
import Store

/// `lethe account archive …` and `lethe account site …`: an account's archive settings and
/// its backup sites. Keys and secrets come from files (or stdin), never from the command
/// line, are sealed with the master key before they reach the database, and are never printed.
extension AccountCommand {
    struct ArchiveSettingsCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "archive",
            abstract: "Show or change an account's archiving: on/off, archive key, schedule, auto-delete.",
            discussion: """
                Without options, shows the settings. The archive key is read from the first line \
                of --key-file (- for stdin) and must pass the rule: \(ArchiveKeyRule.statement). \
                It is sealed with the master key (archive.master_key_file or \
                LETHE_MASTER_KEY_FILE) and never printed. Hours are UTC. Enabling needs a key \
                and at least one backup site (lethe account site add).
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The account id.") var account: String
        @Flag(help: "Turn archiving on: expired data is archived and uploaded before it is deleted.") var enable = false
        @Flag(help: "Turn archiving off: retention deletes without archiving again.") var disable = false
        @Option(help: ArgumentHelp("A file whose first line is the archive key (- for stdin).", valueName: "file"))
        var keyFile: String?
        @Option(help: ArgumentHelp("The UTC hour (0–23) of the daily archive job.", valueName: "hour"))
        var scheduleHour: Int?
        @Option(help: ArgumentHelp("Delete automatically once every site holds the archive.", valueName: "on|off"))
        var autoDelete: String?
        @Option(help: ArgumentHelp("The UTC hour (0–23) of automatic deletion.", valueName: "hour"))
        var autoDeleteHour: Int?
        @Option(
            help: ArgumentHelp("Delete only after the sites confirm they pulled the files.", valueName: "on|off"))
        var requireDownload: String?

        func run() async throws {
            let context = try CommandContext(global, label: "lethe.account")
            var change = ArchiveSettingsChange()
            if enable && disable { throw UsageError("--enable and --disable exclude each other; give one of them") }
            change.enabled = enable ? true : (disable ? false : nil)
            change.scheduleHour = try ArchiveText.hour(scheduleHour, option: "--schedule-hour")
            change.autoDeleteHour = try ArchiveText.hour(autoDeleteHour, option: "--auto-delete-hour")
            change.autoDelete = try ArchiveText.onOff(autoDelete, option: "--auto-delete")
            change.requireDownload = try ArchiveText.onOff(requireDownload, option: "--require-download")
            if let keyFile {
                let key = try SecretFile.firstLine(keyFile, what: "archive key file")
                if let violation = ArchiveKeyRule.violation(of: key) { throw UsageError(violation) }
                change.key = key
            }
            let administration = ArchiveAdministration(masterKey: try context.configuration.masterKey())
            let changed =
                change.enabled != nil || change.key != nil || change.scheduleHour != nil || change.autoDelete != nil
                || change.autoDeleteHour != nil || change.requireDownload != nil
            let (account, request) = (self.account, change)
            let (settings, sites) = try await ArchiveCall.run(context, needsRegistry: true) { connection in
                try AccountAdministration().requireAccount(account, on: connection)
                let settings =
                    changed
                    ? try administration.update(account: account, request, on: connection)
                    : try administration.settings(account: account, on: connection)
                return (settings, try administration.sites(account: account, on: connection).count)
            }
            print(ArchiveText.settings(settings, account: account, sites: sites))
        }
    }

    struct SiteCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "site",
            abstract: "Manage an account's backup sites: add, list, remove.",
            discussion: """
                A site is sftp://USER@HOST[:PORT]/PATH (with --known-hosts, and --identity or \
                --password-file) or file:///PATH (a directory on the worker hosts). Every current \
                site must hold an archive before its rows are deleted.
                """,
            subcommands: [Add.self, List.self, Remove.self])

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Add a backup site. Passwords and passphrases come from files and are sealed.")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "The account id.") var account: String
            @Argument(help: "sftp://USER@HOST[:PORT]/PATH or file:///PATH (no password in the URL).") var url: String
            @Option(
                help: ArgumentHelp(
                    "SSH private key (ed25519/ECDSA), read once and stored sealed: workers need no copy.",
                    valueName: "file"))
            var identity: String?
            @Option(
                help: ArgumentHelp("A file whose first line is the SFTP password (- for stdin).", valueName: "file"))
            var passwordFile: String?
            @Option(
                help: ArgumentHelp(
                    "A file whose first line is the identity's passphrase (- for stdin).", valueName: "file"))
            var passphraseFile: String?
            @Option(
                help: ArgumentHelp(
                    "OpenSSH known_hosts file holding the host key, read once and stored sealed.", valueName: "file"))
            var knownHosts: String?

            func run() async throws {
                let context = try CommandContext(global, label: "lethe.account")
                let site: BackupSiteURL
                do {
                    site = try BackupSiteURL(parsing: url)
                } catch {
                    throw UsageError(error.description)
                }
                try checkCredentials(for: site)
                let secret = try (passwordFile ?? passphraseFile).map {
                    try SecretFile.firstLine($0, what: passwordFile != nil ? "password file" : "passphrase file")
                }
                let identityText = try identity.map {
                    try SecretFile.contents(
                        $0, option: "--identity", marker: "PRIVATE KEY-----",
                        expected: "an SSH private key file (ed25519 or ECDSA, OpenSSH or PEM format)")
                }
                let knownHostsText = try knownHosts.map {
                    try SecretFile.contents($0, option: "--known-hosts", expected: "an OpenSSH known_hosts file")
                }
                let administration = ArchiveAdministration(masterKey: try context.configuration.masterKey())
                let (account, shown) = (self.account, site.description)
                let (identity, knownHosts) = (identity.map(SecretFile.absolute), knownHosts.map(SecretFile.absolute))
                let id = try await ArchiveCall.run(context, needsRegistry: true) { connection in
                    try administration.addSite(
                        account: account, url: shown, identityFile: identity, secret: secret,
                        knownHostsFile: knownHosts, identity: identityText, knownHosts: knownHostsText, on: connection)
                }
                print("backup site \(id) added to account \(account): \(shown)")
            }

            /// sftp needs known hosts and one way to log in; file:// takes no credentials.
            func checkCredentials(for site: BackupSiteURL) throws {
                let given = [
                    ("--identity", identity), ("--password-file", passwordFile), ("--passphrase-file", passphraseFile),
                    ("--known-hosts", knownHosts),
                ].filter { $0.1 != nil }.map(\.0)
                switch site.scheme {
                case .file:
                    guard given.isEmpty else {
                        throw UsageError(
                            "\(given.joined(separator: ", ")) not allowed for \(site): a file:// site takes no credentials"
                        )
                    }
                case .sftp:
                    guard knownHosts != nil else {
                        throw UsageError(
                            "sftp site \(site) needs --known-hosts FILE (an OpenSSH known_hosts file holding its host key)"
                        )
                    }
                    guard (identity == nil) != (passwordFile == nil) else {
                        throw UsageError(
                            "sftp site \(site) needs exactly one of --identity FILE (a private key) or --password-file FILE"
                        )
                    }
                    if passphraseFile != nil, identity == nil {
                        throw UsageError("--passphrase-file belongs to --identity; a password goes in --password-file")
                    }

                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List an account's current backup sites.")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "The account id.") var account: String

            func run() async throws {
                let sites = try await ArchiveCall.administer(global, label: "lethe.account", needsRegistry: true) {
                    [account] administration, connection in
                    try AccountAdministration().requireAccount(account, on: connection)
                    return try administration.sites(account: account, on: connection)
                }
                var table = TextTable("SITE", "URL", "IDENTITY", "SECRET", "KNOWN HOSTS")
                func shown(_ path: String?, stored: Bool) -> String {
                    stored ? "sealed (read from \(path ?? "-"))" : path ?? "-"
                }
                for site in sites {
                    table.add(
                        "\(site.id)", site.url, shown(site.identityFile, stored: site.hasStoredIdentity),
                        site.hasSecret ? "sealed" : "-", shown(site.knownHostsFile, stored: site.hasStoredKnownHosts))
                }
                print(
                    sites.isEmpty
                        ? "account \(account) has no backup sites (add one: lethe account site add \(account) URL)"
                        : table.rendered)
            }
        }

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Remove a backup site: later files no longer go there (uploads already made stay).")
            @OptionGroup var global: GlobalOptions
            @Argument(help: "The account id.") var account: String
            @Argument(help: "The site id (lethe account site list).") var site: Int64

            func run() async throws {
                try await ArchiveCall.administer(global, label: "lethe.account", needsRegistry: true) {
                    [account, site] in try $0.removeSite(account: account, site: site, on: $1)
                }
                print("backup site \(site) removed from account \(account)")
            }
        }
    }
}

/// Secrets and paths from the command line: files whose first line is the secret, and
/// paths that must mean the same on the worker hosts.
enum SecretFile {
    /// The first line of `path` (`-`: stdin), without its line break. Errors name the path only.
    static func firstLine(_ path: String, what: String) throws -> String {
        let line: String?
        if path == "-" {
            line = readLine(strippingNewline: true)
        } else {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw UsageError("cannot read the \(what) \(path): no such readable file")
            }
            line = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
                .first.map(String.init)
        }
        var text = line ?? ""
        if text.hasSuffix("\r") { text.removeLast() }
        guard !text.isEmpty else {
            throw UsageError(
                "the \(what) \(path == "-" ? "on stdin" : path) is empty; expected the secret on its first line")
        }
        return text
    }

    /// The whole of `path` (read once: it is stored sealed, workers need no copy), which must
    /// be UTF-8 text of at most 1 MiB containing `marker` when given (an empty known_hosts is
    /// taken: every host key is then refused). Errors name the option and the path, never the
    /// contents.
    static func contents(_ path: String, option: String, marker: String? = nil, expected: String) throws -> String {
        // At most one byte over the limit is read: a huge file, or /dev/zero, is refused, not loaded.
        guard let handle = FileHandle(forReadingAtPath: path),
            let data = try? handle.read(upToCount: (1 << 20) + 1) ?? Data()
        else {
            throw UsageError("cannot read \(option) \(path): no such readable file; expected \(expected)")
        }
        try? handle.close()
        guard data.count <= 1 << 20, let text = String(data: data, encoding: .utf8),
            marker.map({ text.contains($0) }) ?? true
        else {
            throw UsageError("\(option) \(path) is not \(expected)")
        }
        return text
    }

    /// `path` made absolute, as recorded beside the stored contents (where they were read from).
    static func absolute(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }
}

/// Parsing and printing archive settings.
enum ArchiveText {
    /// `hour` checked as a UTC hour.
    static func hour(_ hour: Int?, option: String) throws -> Int? {
        guard let hour else { return nil }
        guard (0...23).contains(hour) else {
            throw UsageError("\(option) \(hour) is not allowed; expected a UTC hour from 0 to 23")
        }
        return hour
    }

    /// `on`/`off` (also true/false, yes/no).
    static func onOff(_ text: String?, option: String) throws -> Bool? {
        guard let text else { return nil }
        guard let value = BooleanText.parse(text) else {
            throw UsageError("\(option) \"\(text)\" is not allowed; expected on or off")
        }
        return value
    }

    static func clock(_ hour: Int) -> String { (hour < 10 ? "0" : "") + "\(hour):00 UTC" }

    /// The settings as `lethe account archive` prints them; never the key.
    static func settings(_ settings: ArchiveSettings?, account: String, sites: Int) -> String {
        guard let settings else {
            return "account \(account): archiving off (never configured), no archive key, \(sites) backup site"
                + (sites == 1 ? "" : "s")
        }
        var table = TextTable("SETTING", "VALUE")
        table.add("archiving", settings.enabled ? "on" : "off")
        table.add("archive key", settings.hasKey ? "set (sealed with the master key)" : "none")
        table.add(
            "schedule",
            "daily at \(clock(settings.scheduleHour))"
                + (settings.nextRunAt.map { ", next \(HumanText.timestamp($0))" } ?? ""))
        table.add(
            "auto-delete", settings.autoDelete ? "on, at \(clock(settings.autoDeleteHour))" : "off (approve by hand)")
        table.add("require download", settings.requireDownload ? "on" : "off")
        table.add("backup sites", "\(sites)")
        return "account \(account)\n" + table.rendered
    }
}
