import Foundation

/// The child processes of `lethe bench soak`: one coordinator and `workers` workers of this
/// executable, each logging to a file of its own, stopped with SIGTERM at the end.
/// Unchecked: its properties never change after `init`, and the sampler only reads them.
final class SoakFleet: @unchecked Sendable {
    let coordinator: Process
    let workers: [Process]
    let logs: [String]

    /// Starts them with `config` and the connection string in their environment.
    init(
        executable: String, config: String, workers count: Int, environment: [String: String], logDirectory: String
    )
        throws
    {
        var logs: [String] = []
        func start(_ arguments: [String], log name: String) throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments + ["--config", config]
            process.environment = environment
            process.standardInput = FileHandle.nullDevice
            let path = logDirectory + "/\(name).log"
            _ = FileManager.default.createFile(atPath: path, contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            logs.append(path)
            return process
        }
        coordinator = try start(["coordinator"], log: "coordinator")
        workers = try (1...count).map { try start(["worker"], log: "worker-\($0)") }
        self.logs = logs
    }

    /// The first process that exited, with the end of its log; nil while all run.
    var exited: String? {
        for (process, log) in zip([coordinator] + workers, logs) where !process.isRunning {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            return "\((log as NSString).lastPathComponent) exited \(process.terminationStatus): "
                + String(text.suffix(600))
        }
        return nil
    }

    /// SIGTERM to each, then waits for all (graceful shutdown).
    func stop() {
        for process in [coordinator] + workers where process.isRunning { process.terminate() }
        for process in [coordinator] + workers { process.waitUntilExit() }
    }
}
