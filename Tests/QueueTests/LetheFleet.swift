import Foundation
import TestSupport

/// Lethe processes a test starts against its database; `stopAll` kills what is left, so a
/// failing test never leaves workers behind.
final class LetheFleet: @unchecked Sendable {
    let databaseURL: String
    let logDirectory: URL
    private let lock = NSLock()
    private var processes: [Process] = []

    init(databaseURL: String) throws {
        self.databaseURL = databaseURL
        logDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-fleet-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: logDirectory, withIntermediateDirectories: true)
        // Workers read the entity-type registry from the database: sync an empty one first.
        let config = try writeConfig("log: { level: warning }\n")
        defer { try? FileManager.default.removeItem(atPath: config) }
        let sync = try LetheProcess.run(
            ["policy", "sync", "--config", config], environment: ["LETHE_DATABASE_URL": databaseURL])
        guard sync.status == 0 else { throw TestSetupError("lethe policy sync exited \(sync.status): \(sync.output)") }
    }

    /// Starts `lethe arguments…` with LETHE_DATABASE_URL set; its output goes to a log file.
    @discardableResult
    func launch(_ arguments: [String], environment: [String: String] = [:]) throws -> Process {
        var env = environment
        env["LETHE_DATABASE_URL"] = databaseURL
        let index = lock.withLock { processes.count }
        let log = logDirectory.appendingPathComponent("\(index)-\(arguments.first ?? "lethe").log")
        let process = try LetheProcess.launch(arguments, environment: env, log: log)
        lock.withLock { processes.append(process) }
        return process
    }

    /// Waits for `process` to exit; false if it is still running after `timeout`.
    func wait(_ process: Process, timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { usleep(50_000) }
        return !process.isRunning
    }

    /// Everything the processes printed, for failure messages.
    func logs() -> String {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: logDirectory.path)) ?? []
        return files.sorted().map { name in
            let text = (try? String(contentsOf: logDirectory.appendingPathComponent(name), encoding: .utf8)) ?? ""
            return "== \(name)\n" + String(text.suffix(4000))
        }.joined(separator: "\n")
    }

    func stopAll() {
        let all = lock.withLock { processes }
        for process in all where process.isRunning { kill(process.processIdentifier, SIGKILL) }
        for process in all { process.waitUntilExit() }
    }
}
