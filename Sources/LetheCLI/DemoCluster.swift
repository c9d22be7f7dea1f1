import Foundation

/// A throwaway PostgreSQL cluster for `lethe demo`: initdb into a temporary directory,
/// started on a Unix socket only (no TCP port to collide with), stopped and removed at
/// the end. As root, the server runs as the `postgres` OS user (initdb refuses root).
struct DemoCluster {
    let directory: URL
    let binaries: URL
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

    static func start() throws -> DemoCluster {
        let binaries = try findBinaries()
        let directory = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("lethe-demo-\(UUID().uuidString.prefix(8).lowercased())")
        let cluster = DemoCluster(directory: directory, binaries: binaries)
        let manager = FileManager.default
        try manager.createDirectory(at: cluster.socketDirectory, withIntermediateDirectories: true)
        try manager.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory.path)
        if isRoot {
            try run("/bin/chown", ["-R", "postgres:postgres", directory.path], asPostgres: false)
        }
        try cluster.tool(
            "initdb", ["-D", cluster.data.path, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        try cluster.tool(
            "pg_ctl",
            [
                "-D", cluster.data.path, "-l", directory.appendingPathComponent("server.log").path, "-w", "-t", "60",
                "-o",
                "-c listen_addresses='' -c unix_socket_directories='\(cluster.socketDirectory.path)' -c fsync=off",
                "start",
            ])
        return cluster
    }

    /// Stops the server and removes the directory (unless `keep`).
    func stop(keep: Bool) {
        _ = try? tool("pg_ctl", ["-D", data.path, "-m", "fast", "-w", "stop"])
        if !keep { try? FileManager.default.removeItem(at: directory) }
    }

    @discardableResult
    func tool(_ name: String, _ arguments: [String]) throws -> String {
        try Self.run(binaries.appendingPathComponent(name).path, arguments, asPostgres: Self.isRoot)
    }

    /// Runs a program to completion; its output is returned, or thrown with it on failure.
    @discardableResult
    static func run(_ path: String, _ arguments: [String], asPostgres: Bool) throws -> String {
        let process = Process()
        if asPostgres {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            process.arguments = ["-u", "postgres", "--", path] + arguments
            process.currentDirectoryURL = URL(fileURLWithPath: "/tmp")  // postgres may not read our cwd
        } else {
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = arguments
        }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw DemoFailure(
                "\((path as NSString).lastPathComponent) failed (exit \(process.terminationStatus)): \(text)")
        }
        return text
    }
}

/// A step of the demo that failed at run time (exit 1).
struct DemoFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
