import Foundation

/// What a finished child process printed and how it exited.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    /// Both streams, for assertions about what a user sees.
    public var output: String { stdout + stderr }
}

/// Runs the built `lethe` executable, as a user would.
public enum LetheProcess {
    /// `$LETHE_BIN` (set by scripts/test), else `lethe` beside the test bundle.
    public static func executablePath() throws -> String {
        if let path = ProcessInfo.processInfo.environment["LETHE_BIN"], !path.isEmpty { return path }
        let exe =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: exe).deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = directory.appendingPathComponent("lethe").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        throw TestSetupError("cannot find the lethe executable: run `swift build` or set LETHE_BIN")
    }

    /// Starts `lethe arguments…` in the background with its output going to `log` (a file),
    /// so a chatty process never blocks on a full pipe.
    public static func launch(_ arguments: [String], environment: [String: String] = [:], log: URL) throws -> Process {
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try executablePath())
        process.arguments = arguments
        process.environment = mergedEnvironment(environment)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    static func mergedEnvironment(_ environment: [String: String]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter {
            !($0.key.hasPrefix("LETHE_") || $0.key.hasPrefix("PG"))
        }
        env.merge(environment) { $1 }
        return env
    }

    /// Starts `lethe arguments…` with the test's environment minus LETHE_* and PG* variables,
    /// plus `environment`.
    public static func start(
        _ arguments: [String], environment: [String: String] = [:], currentDirectory: String? = nil
    ) throws -> (Process, Pipe, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try executablePath())
        process.arguments = arguments
        process.environment = mergedEnvironment(environment)
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return (process, out, err)
    }

    /// Runs `lethe arguments…` to completion.
    public static func run(
        _ arguments: [String], environment: [String: String] = [:], currentDirectory: String? = nil
    ) throws -> ProcessResult {
        let (process, out, err) = try start(arguments, environment: environment, currentDirectory: currentDirectory)
        // Read both pipes fully before waiting, so a chatty child never blocks on a full pipe.
        let errData = ReadBox()
        let reader = Thread { errData.data = err.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !errData.done { usleep(1000) }
        return ProcessResult(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData.data, as: UTF8.self))
    }
}

/// Hands a reader thread's data back; written once, then read after `done`.
private final class ReadBox: @unchecked Sendable {
    private let lock = NSLock()
    private var _data = Data()
    private var _done = false
    var data: Data {
        get { lock.withLock { _data } }
        set {
            lock.withLock {
                _data = newValue; _done = true
            }
        }
    }
    var done: Bool { lock.withLock { _done } }
}

/// The repository's root directory (where Package.swift is), for reaching `migrations/`.
public enum Repository {
    public static func root(file: String = #filePath) -> URL {
        var url = URL(fileURLWithPath: file)
        while url.path != "/" {
            url = url.deletingLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                return url
            }
        }
        fatalError("Package.swift not found above \(file)")
    }

    /// A fresh temporary directory holding copies of `migrations/*.sql`, for tests that edit them.
    public static func copyOfMigrations() throws -> URL {
        let source = root().appendingPathComponent("migrations")
        let target = FileManager.default.temporaryDirectory.appendingPathComponent(
            "lethe-migrations-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: source.path) where name.hasSuffix(".sql") {
            try FileManager.default.copyItem(
                at: source.appendingPathComponent(name), to: target.appendingPathComponent(name))
        }
        return target
    }
}
