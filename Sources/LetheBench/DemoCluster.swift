import Foundation
import LetheCLI
import LetheConfiguration
import Postgres

/// A throwaway PostgreSQL cluster for `lethe demo`: initdb into a temporary directory,
/// the server run as a child process on a Unix socket only (no TCP port to collide with),
/// stopped and removed at the end. As root, it runs as the `postgres` OS user (initdb
/// refuses root), through setpriv, which execs rather than forks, so the child is the server.
final class DemoCluster {
    let directory: URL
    let binaries: URL
    private var server: Process?
    /// More server settings (`-c name=value` pairs), e.g. for `lethe bench chaos`.
    var settings: [String] = []

    init(directory: URL, binaries: URL) {
        self.directory = directory
        self.binaries = binaries
    }
    var data: URL { directory.appendingPathComponent("data") }
    var socketDirectory: URL { directory.appendingPathComponent("socket") }

    /// A libpq connection string for `database` on this cluster.
    func conninfo(database: String = "postgres") -> String {
        "host=\(socketDirectory.path) port=5432 user=postgres dbname=\(database)"
    }

    static var isRoot: Bool { getuid() == 0 }

    /// initdb's directory: PostgreSQL 15 if installed, else the newest under /usr/lib/postgresql,
    /// else the PATH.
    static func findBinaries() throws -> URL {
        let manager = FileManager.default
        var candidates = ["/usr/lib/postgresql/15/bin"]
        let versions = (try? manager.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        candidates += versions.compactMap(Int.init).sorted(by: >).map { "/usr/lib/postgresql/\($0)/bin" }
        candidates += (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        for candidate in candidates
        where manager.isExecutableFile(atPath: candidate + "/initdb")
            && manager.isExecutableFile(atPath: candidate + "/pg_ctl")
        {
            return URL(fileURLWithPath: candidate)
        }
        throw UsageError(
            "lethe demo needs PostgreSQL's initdb and pg_ctl (looked in /usr/lib/postgresql/*/bin and PATH); "
                + "install them with: apt-get install postgresql")
    }

    static func start(settings: [String] = []) throws -> DemoCluster {
        let binaries = try findBinaries()
        let directory = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("lethe-demo-\(UUID().uuidString.prefix(8).lowercased())")
        let cluster = DemoCluster(directory: directory, binaries: binaries)
        cluster.settings = settings
        let manager = FileManager.default
        try manager.createDirectory(at: cluster.socketDirectory, withIntermediateDirectories: true)
        try manager.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory.path)
        if isRoot {
            try run("/bin/chown", ["-R", "postgres:postgres", directory.path], asPostgres: false)
        }
        try cluster.tool(
            "initdb", ["-D", cluster.data.path, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        try cluster.startServer()
        return cluster
    }

    private func startServer() throws {
        let postgres = binaries.appendingPathComponent("postgres").path
        let arguments =
            [
                "-D", data.path, "-c", "listen_addresses=", "-c", "unix_socket_directories=\(socketDirectory.path)",
                "-c", "fsync=off",
            ] + settings
        let process = Process()
        if Self.isRoot {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=postgres", "--regid=postgres", "--init-groups", "--", postgres] + arguments
            process.currentDirectoryURL = URL(fileURLWithPath: "/tmp")
        } else {
            process.executableURL = URL(fileURLWithPath: postgres)
            process.arguments = arguments
        }
        let log = directory.appendingPathComponent("server.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        server = process
        // Ready when it accepts a connection.
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if !process.isRunning { break }
            if let connection = try? Connection.connect(conninfo(), applicationName: "lethe-demo") {
                connection.close()
                return
            }
            usleep(100_000)
        }
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        throw DemoFailure("PostgreSQL did not start: \(output)")
    }

    /// Stops the server with a fast shutdown (SIGINT: sessions are cut, open transactions
    /// roll back) and starts it again on the same directory.
    func restart() throws {
        if let server, server.isRunning {
            server.interrupt()
            server.waitUntilExit()
        }
        try startServer()
    }

    /// Stops the server (fast shutdown) and removes the directory (unless `keep`).
    func stop(keep: Bool) {
        if let server, server.isRunning {
            server.interrupt()
            server.waitUntilExit()
        }
        if !keep { try? FileManager.default.removeItem(at: directory) }
    }

    @discardableResult
    func tool(_ name: String, _ arguments: [String]) throws -> String {
        try Self.run(binaries.appendingPathComponent(name).path, arguments, asPostgres: Self.isRoot)
    }

    /// Runs a program to completion; its output is returned, or thrown with it on failure.
    @discardableResult
    static func run(_ path: String, _ arguments: [String], asPostgres: Bool) throws -> String {
        // postgres may not read our working directory
        try ExternalProgram(
            path: path, arguments: arguments, launcher: asPostgres ? ExternalProgram.asPostgres : [],
            directory: asPostgres ? "/tmp" : nil
        ).run().output
    }
}

/// A step of the demo that failed at run time (exit 1).
struct DemoFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
