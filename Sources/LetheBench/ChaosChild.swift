import Foundation

/// One `lethe` child process of a chaos run (a worker or a coordinator) in a slot that
/// outlives it: killed, stopped and started again; its output appends to one log file.
final class ChaosChild {
    let name: String
    private let executable: String
    private let arguments: [String]
    private let environment: [String: String]
    let log: URL
    private(set) var process: Process?
    /// Stopped with SIGSTOP and not yet continued.
    private(set) var paused = false
    private(set) var starts = 0

    init(name: String, executable: String, arguments: [String], environment: [String: String], log: URL) {
        self.name = name
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.log = log
    }

    var pid: pid_t? { process.flatMap { $0.isRunning ? $0.processIdentifier : nil } }
    var isRunning: Bool { process?.isRunning ?? false }

    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        if !FileManager.default.fileExists(atPath: log.path) {
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: log)
        _ = handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? handle.close()
        self.process = process
        paused = false
        starts += 1
    }

    /// kill -9, waiting until it is gone.
    func kill9() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        paused = false
    }

    func pause() {
        guard let pid else { return }
        kill(pid, SIGSTOP)
        paused = true
    }

    func resume() {
        guard let pid else { return }
        kill(pid, SIGCONT)
        paused = false
    }

    /// SIGTERM (a graceful stop), then SIGKILL after `grace` seconds.
    func stop(grace: Double = 20) {
        guard let process, process.isRunning else { return }
        if paused { resume() }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning { kill9() }
        process.waitUntilExit()
    }
}
