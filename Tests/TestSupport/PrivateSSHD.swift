import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The shared test sshd that scripts/test starts (scripts/services.sh), read from the
/// `LETHE_TEST_SSH*` variables.
public struct TestSSHServer: Sendable {
    public var host: String
    public var port: Int
    public var user: String
    /// The client's ed25519 private key (no passphrase), listed in the server's authorized_keys.
    public var keyPath: String
    public var knownHostsPath: String
    /// The sftp user's writable directory; SFTP paths equal local paths.
    public var root: String
    /// The shared sshd's configuration, which `PrivateSSHD` copies.
    public var configPath: String

    /// Reads the variables; throws a message pointing at scripts/test when they are missing.
    public static func fromEnvironment() throws -> TestSSHServer {
        let env = ProcessInfo.processInfo.environment
        func value(_ name: String) throws -> String {
            guard let value = env[name], !value.isEmpty else {
                throw TestSetupError(
                    "\(name) is not set: run the SFTP tests through scripts/test (it starts a throwaway sshd), "
                        + "or `source` the env.sh that scripts/services.sh writes")
            }
            return value
        }
        let host = try value("LETHE_TEST_SSH_HOST")
        guard let port = Int(try value("LETHE_TEST_SSH_PORT")) else {
            throw TestSetupError("LETHE_TEST_SSH_PORT is not a number")
        }
        return TestSSHServer(
            host: host, port: port, user: try value("LETHE_TEST_SSH_USER"), keyPath: try value("LETHE_TEST_SSH_KEY"),
            knownHostsPath: try value("LETHE_TEST_SSH_KNOWN_HOSTS"), root: try value("LETHE_TEST_SSH_ROOT"),
            configPath: try value("LETHE_TEST_SSHD_CONFIG"))
    }
}

/// An sshd of one test's own: a copy of the shared test sshd's configuration (same host keys,
/// authorized_keys, sftp user and SFTP root) on a free port, so that a test may stop and
/// restart it, optionally with slow uploads so that it can be stopped mid-transfer.
public final class PrivateSSHD: Sendable {
    private static let sshd = "/usr/sbin/sshd"  // sshd refuses to start unless run by absolute path
    private static let sftpServer = "/usr/lib/openssh/sftp-server"
    public let port: Int
    /// A known_hosts with `[127.0.0.1]:port` lines for every host key.
    public let knownHostsPath: String
    /// Holds the configuration, pid file, log, known_hosts and the throttled-sftp script.
    public let directory: String
    private let configPath: String
    private let pidPath: String
    private let logPath: String

    private init(port: Int, directory: String) {
        self.port = port
        self.directory = directory
        configPath = directory + "/sshd_config"
        pidPath = directory + "/sshd.pid"
        logPath = directory + "/sshd.log"
        knownHostsPath = directory + "/known_hosts"
    }

    /// Starts an sshd on a free port and waits until it accepts connections.
    ///
    /// With `sftpUploadRate` (bytes per second), SFTP runs `sftp-server` behind
    /// `DIRECTORY/throttled-sftp`, which passes what the client sends on in reads of at most
    /// 16 KiB at no more than about that rate (what the server sends back is not slowed): an
    /// upload then takes long enough to be interrupted. Without it, SFTP is the shared config's
    /// `internal-sftp`.
    public static func start(sftpUploadRate: Int? = nil) throws -> PrivateSSHD {
        let shared = try TestSSHServer.fromEnvironment()
        let template = try String(contentsOfFile: shared.configPath, encoding: .utf8)
        let directory = try makeDirectory()
        if let sftpUploadRate { try writeThrottledSFTP(in: directory, bytesPerSecond: sftpUploadRate) }
        var lastError: (any Error)?
        for _ in 0..<10 {
            let server = PrivateSSHD(port: try freePort(), directory: directory)
            do {
                try server.writeFiles(template: template, throttledSFTP: sftpUploadRate != nil)
                try server.launch()
                return server
            } catch let error as PortTaken {
                lastError = error  // another process took the port between our check and sshd's bind
            }
        }
        throw lastError ?? TestSetupError("cannot start a private sshd")
    }

    /// Stops the listener and every per-connection sshd, so that transfers in progress break;
    /// waits until the port is closed.
    public func stop() throws {
        guard let pid = listenerPID() else { return }
        // Freeze the listener so it forks no new child while we collect its descendants.
        kill(pid, SIGSTOP)
        for child in Self.descendants(of: pid) { kill(child, SIGKILL) }
        kill(pid, SIGKILL)
        try? FileManager.default.removeItem(atPath: pidPath)
        let deadline = Date().addingTimeInterval(10)
        while Self.isAlive(pid) || Self.accepts(port: port) {
            guard Date() < deadline else { throw TestSetupError("private sshd \(pid) on port \(port) did not stop") }
            usleep(10_000)
        }
    }

    /// Stops the server if it runs and starts it again on the same port.
    public func restart() throws {
        try stop()
        try launch()
    }

    deinit {
        try? stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: - Starting

    private struct PortTaken: Error {}

    /// The shared config with this server's port and pid file, and with `throttled-sftp` in
    /// place of its `Subsystem sftp` line when `throttledSFTP`; known_hosts for its host keys.
    private func writeFiles(template: String, throttledSFTP: Bool) throws {
        var hostKeys: [String] = []
        var lines = [
            "# Private copy of the shared test sshd (TestSupport/PrivateSSHD.swift).", "Port \(port)",
            "PidFile \(pidPath)",
        ]
        var replacedSubsystem = false
        for line in template.split(separator: "\n", omittingEmptySubsequences: false) {
            let words = line.split(separator: " ")
            let keyword = words.first.map { $0.lowercased() } ?? ""
            if keyword == "port" || keyword == "pidfile" { continue }
            if keyword == "hostkey", let path = words.dropFirst().first {
                hostKeys.append(String(path))
            }
            if throttledSFTP && keyword == "subsystem" && words.dropFirst().first == "sftp" {
                lines.append("Subsystem sftp \(directory)/throttled-sftp")
                replacedSubsystem = true
                continue
            }
            lines.append(String(line))
        }
        if throttledSFTP && !replacedSubsystem {
            throw TestSetupError("the shared sshd config has no `Subsystem sftp` line to throttle")
        }
        try lines.joined(separator: "\n").write(toFile: configPath, atomically: true, encoding: .utf8)
        var knownHosts = ""
        for key in hostKeys {
            let publicKey = try String(contentsOfFile: key + ".pub", encoding: .utf8).split(separator: " ")
            knownHosts += "[127.0.0.1]:\(port) \(publicKey[0]) \(publicKey[1])\n"
        }
        try knownHosts.write(toFile: knownHostsPath, atomically: true, encoding: .utf8)
    }

    /// Writes `directory/throttled-sftp` (mode 0755, so the sftp user may run it; sshd runs it
    /// through that user's shell): a perl loop forwards the client's bytes to `sftp-server`,
    /// sleeping after every read of at most 16 KiB.
    private static func writeThrottledSFTP(in directory: String, bytesPerSecond: Int) throws {
        guard bytesPerSecond > 0 else { throw TestSetupError("sftpUploadRate must be positive") }
        let pause = String(format: "%.6f", 16384 / Double(bytesPerSecond))
        let path = directory + "/throttled-sftp"
        let script = """
            #!/bin/sh
            # SFTP with slow uploads (TestSupport/PrivateSSHD.swift): about \(bytesPerSecond) bytes/s in.
            perl -e '$|=1; while (sysread(STDIN, $b, 16384)) { syswrite(STDOUT, $b); select(undef, undef, undef, \(pause)) }' \\
              | \(sftpServer)

            """
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        guard chmod(path, 0o755) == 0 else { throw TestSetupError("chmod \(path) failed: errno \(errno)") }
    }

    /// Runs `sshd -f CONF -E LOG` (it daemonizes) and waits for its pid file and port.
    private func launch() throws {
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.sshd)
        process.arguments = ["-f", configPath, "-E", logPath]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestSetupError("\(Self.sshd) -f \(configPath) exited \(process.terminationStatus): \(log())")
        }
        let deadline = Date().addingTimeInterval(10)
        while !(listenerPID() != nil && Self.accepts(port: port)) {
            let text = log()
            if text.contains("Address already in use") || text.contains("Cannot bind") { throw PortTaken() }
            guard Date() < deadline else {
                throw TestSetupError("private sshd on port \(port) did not come up: \(text)")
            }
            usleep(10_000)
        }
    }

    private func log() -> String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    private func listenerPID() -> pid_t? {
        guard let text = try? String(contentsOfFile: pidPath, encoding: .utf8),
            let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), Self.isAlive(pid)
        else { return nil }
        return pid
    }

    private static func makeDirectory() throws -> String {
        var template = Array("/tmp/lethe-private-sshd.XXXXXX".utf8CString)
        guard let path = mkdtemp(&template) else { throw TestSetupError("mkdtemp failed: errno \(errno)") }
        let directory = String(cString: path)
        chmod(directory, 0o755)
        return directory
    }

    // MARK: - Processes and ports

    /// The processes below `pid` (its children, theirs, …), found by walking /proc: sshd's
    /// per-connection processes rename themselves, so their command lines name no config.
    private static func descendants(of pid: pid_t) -> [pid_t] {
        var parents: [pid_t: pid_t] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let child = pid_t(entry), let stat = processStat(child) else { continue }
            parents[child] = stat.parent
        }
        var found: [pid_t] = []
        var frontier = [pid]
        while let next = frontier.popLast() {
            let children = parents.filter { $0.value == next }.map(\.key)
            found += children
            frontier += children
        }
        return found
    }

    /// State and parent from /proc/PID/stat ("pid (comm) S ppid …"; comm may hold spaces).
    private static func processStat(_ pid: pid_t) -> (state: Character, parent: pid_t)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 1, let state = fields[0].first, let parent = pid_t(fields[1]) else { return nil }
        return (state, parent)
    }

    /// Alive and not a zombie (this container's init may never reap the daemonized sshd).
    private static func isAlive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0, let stat = processStat(pid) else { return false }
        return stat.state != "Z" && stat.state != "X"
    }

    private static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// A port the kernel just handed out and nobody listens on.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSetupError("socket failed: errno \(errno)") }
        defer { close(fd) }
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw TestSetupError("bind failed: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }
}
