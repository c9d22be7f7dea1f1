import Foundation
import LetheCLI

/// Runs another program to completion (initdb and pg_ctl for the demo, bsdtar and OpenSSH's
/// sftp for the benchmarks) and times it. Its output goes to a file, not a pipe: `pg_ctl
/// start` leaves the server holding its output open, and a chatty program would block on a
/// full pipe. `input` is written to its stdin, which is then closed.
struct ExternalProgram {
    var path: String
    var arguments: [String]
    /// A program that starts `path` (e.g. `/usr/bin/setsid --wait`), or none.
    var launcher: [String] = []
    var directory: String?
    /// The child's environment; nil inherits this process's.
    var environment: [String: String]?

    /// In a session of its own, without a controlling terminal (setsid): bsdtar then reads a
    /// passphrase from stdin instead of prompting on the terminal.
    static let newSession = ["/usr/bin/setsid", "--wait"]
    /// As the postgres user (for initdb and pg_ctl when running as root).
    static let asPostgres = ["/usr/sbin/runuser", "-u", "postgres", "--"]

    struct Outcome {
        var output: String
        var seconds: Double
    }

    /// Runs it; throws when it cannot start or exits non-zero (naming it, with its output).
    @discardableResult
    func run(input: Data = Data()) throws -> Outcome {
        let command = launcher + [path] + arguments
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        if let environment { process.environment = environment }
        let log = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("lethe-\(UUID().uuidString).out")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        process.standardOutput = handle
        process.standardError = handle
        let stdin = Pipe()
        process.standardInput = stdin
        let started = ContinuousClock.now
        do {
            try process.run()
        } catch {
            throw DemoFailure("cannot start \(path): \(error)")
        }
        stdin.fileHandleForWriting.write(input)
        try? stdin.fileHandleForWriting.close()
        process.waitUntilExit()
        let seconds = RetentionBench.seconds(ContinuousClock.now - started)
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        guard process.terminationStatus == 0 else {
            throw DemoFailure(
                "\((path as NSString).lastPathComponent) exited \(process.terminationStatus): "
                    + HumanText.clip(output, 400))
        }
        return Outcome(output: output, seconds: seconds)
    }
}
