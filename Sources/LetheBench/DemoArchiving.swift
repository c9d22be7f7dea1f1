import Foundation
import LetheCLI
import Postgres

/// The archiving part of `lethe demo`: two accounts archive before deleting, one to a
/// `file://` site, the other to an `sftp://` site on a throwaway loopback sshd (or to a
/// second `file://` site when sshd is not installed). Everything an operator would do runs
/// through the real `lethe` commands, as child processes: site add, the archive key and
/// switch, starting a job, verifying a file, approving the deletion.
final class DemoArchiving {
    /// One archiving account and where its archives go.
    struct Tenant {
        var account: String
        var site: String
        /// The site's directory on this machine (an SFTP site on loopback writes here too).
        var directory: URL
        var keyFile: String
        /// `lethe account site add` arguments after the URL.
        var siteOptions: [String] = []
    }

    let directory: URL
    let tenants: [Tenant]
    /// Why there is no SFTP site, or nil.
    let sftpUnavailable: String?
    private let sshd: DemoSSHD?
    private let executable: String
    private let environment: [String: String]
    private let configPath: String

    var masterKeyFile: String { directory.appendingPathComponent("master.key").path }
    var spoolDirectory: String { directory.appendingPathComponent("spool").path }
    var accounts: [String] { tenants.map(\.account) }

    /// The config file's `archive:` section.
    var configSection: String {
        "archive:\n  master_key_file: \(masterKeyFile)\n  spool_directory: \(spoolDirectory)\n  site_timeout: 10s\n"
    }

    /// Writes a fresh master key and an archive key per account, creates the site
    /// directories and starts sshd for the second account when it is installed.
    init(
        directory: URL, accounts: (file: String, sftp: String), conninfo: String, configPath: String
    ) throws {
        self.directory = directory
        self.configPath = configPath
        executable = try QueueBench.executablePath()
        environment = ChildEnvironment.with(databaseURL: conninfo)
        let manager = FileManager.default
        try manager.createDirectory(at: directory, withIntermediateDirectories: true)
        try Self.writeSecret(Self.randomHex(bytes: 32), to: directory.appendingPathComponent("master.key").path)
        func keyFile(_ account: String) throws -> String {
            let path = directory.appendingPathComponent("archive-key-\(account)").path
            // The rule wants upper- and lower-case letters and a digit or symbol.
            try Self.writeSecret("Demo-Key-" + Self.randomHex(bytes: 12), to: path)
            return path
        }
        let sites = directory.appendingPathComponent("sites")
        let fileSite = sites.appendingPathComponent("file-\(accounts.file)")
        try manager.createDirectory(at: fileSite, withIntermediateDirectories: true)
        var tenants = [
            Tenant(
                account: accounts.file, site: "file://\(fileSite.path)", directory: fileSite,
                keyFile: try keyFile(accounts.file))
        ]
        let secondKey = try keyFile(accounts.sftp)
        let sftpRoot = sites.appendingPathComponent("sftp-\(accounts.sftp)")
        var sshd: DemoSSHD?
        var unavailable = DemoSSHD.unavailableReason
        if unavailable == nil {
            try manager.createDirectory(at: sftpRoot, withIntermediateDirectories: true)
            do {
                sshd = try DemoSSHD.start(in: directory.appendingPathComponent("sshd"))
            } catch {
                unavailable = "sshd did not start (\(error))"
            }
        }
        if let sshd {
            let root = sftpRoot
            tenants.append(
                Tenant(
                    account: accounts.sftp, site: "sftp://\(sshd.user)@127.0.0.1:\(sshd.port)\(root.path)",
                    directory: root, keyFile: secondKey,
                    siteOptions: ["--identity", sshd.identity, "--known-hosts", sshd.knownHosts]))
        } else {
            let second = sites.appendingPathComponent("file-\(accounts.sftp)")
            try manager.createDirectory(at: second, withIntermediateDirectories: true)
            tenants.append(
                Tenant(
                    account: accounts.sftp, site: "file://\(second.path)", directory: second, keyFile: secondKey))
        }
        self.tenants = tenants
        self.sshd = sshd
        sftpUnavailable = unavailable
    }

    /// Stops sshd, if it runs.
    func stop() { sshd?.stop() }

    /// Adds each account's site, stores its archive key and turns archiving on (deletion
    /// waits for approval, the default), and starts a job now rather than at 02:00 UTC.
    func enable() throws {
        for tenant in tenants {
            try lethe(["account", "site", "add", tenant.account, tenant.site] + tenant.siteOptions)
            try lethe(["account", "archive", tenant.account, "--key-file", tenant.keyFile, "--enable"])
            try lethe(["archive", "run", "--account", tenant.account])
        }
    }

    /// `lethe ARGUMENTS… --config FILE` as a child process (the connection string in its
    /// environment, never on its command line); its command and output are printed indented.
    @discardableResult
    func lethe(_ arguments: [String]) throws -> String {
        Console.line("    $ lethe " + arguments.joined(separator: " "))
        let output = try ExternalProgram(
            path: executable, arguments: arguments + ["--config", configPath], environment: environment
        ).run().output
        let lines = output.split(separator: "\n").map { "      " + $0 }
        if !lines.isEmpty { Console.line(lines.joined(separator: "\n")) }
        return output
    }

    // MARK: - Secrets

    static func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// Writes `secret` and a newline to a new file only its owner can read.
    static func writeSecret(_ secret: String, to path: String) throws {
        guard
            FileManager.default.createFile(
                atPath: path, contents: Data((secret + "\n").utf8),
                attributes: [
                    .posixPermissions: 0o600
                ])
        else {
            throw DemoFailure("cannot write \(path)")
        }
    }
}
