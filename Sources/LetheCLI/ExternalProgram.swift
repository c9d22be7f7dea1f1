import Foundation

/// Runs another program to completion for the benchmarks (bsdtar, OpenSSH's sftp) and times
/// it. Its output goes to a file, not a pipe, so a chatty program never blocks on a full
/// pipe; `input` is written to its stdin, which is then closed.
struct ExternalProgram {
    var path: String
    var arguments: [String]
    /// Starts the program in a session of its own, without a controlling terminal (setsid):
    /// bsdtar then reads a passphrase from stdin instead of prompting on the terminal.
    var newSession = false

    struct Outcome {
        var status: Int32
        var output: String
        var seconds: Double
    }

    /// Runs it; throws when it cannot start or exits non-zero (naming it, with its output).
    func run(input: Data = Data()) throws -> Outcome {
        let process = Process()
        if newSession {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setsid")
            process.arguments = ["--wait", path] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = arguments
        }
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
        return Outcome(status: process.terminationStatus, output: output, seconds: seconds)
    }
}
