import Foundation
import LetheCLI

#if canImport(Glibc)
    import Glibc
#endif

/// A throwaway OpenSSH sshd for `lethe demo`'s SFTP backup site, set up as scripts/services.sh
/// sets up the test sshd: its own host keys, a client key, loopback only, key logins only,
/// `internal-sftp`. It only lets in the user running the demo (as root: root, which needs no
/// OS account to be created). It daemonizes, as sshd does by default, and is stopped by the pid
/// in its pid file: run in the foreground (`-D`) as a Foundation `Process`, sshd closes the
/// socket Foundation watches for its exit, and Foundation's shared watcher thread then waits
/// for sshd in `waitpid`, so that no other child's exit is ever noticed.
final class DemoSSHD {
    static let sshd = "/usr/sbin/sshd"  // sshd refuses to start unless run by absolute path
    static let keygen = "/usr/bin/ssh-keygen"

    let directory: URL
    let user: String
    private(set) var port = 0

    /// The client's ed25519 key (no passphrase), in the server's authorized_keys.
    var identity: String { directory.appendingPathComponent("client_ed25519").path }
    /// `[127.0.0.1]:PORT` lines for both host keys.
    var knownHosts: String { directory.appendingPathComponent("known_hosts").path }
    private var config: String { directory.appendingPathComponent("sshd_config").path }
    private var pidFile: String { directory.appendingPathComponent("sshd.pid").path }
    private var log: URL { directory.appendingPathComponent("sshd.log") }

    private init(directory: URL, user: String) {
        self.directory = directory
        self.user = user
    }

    /// Why sshd cannot run here, or nil when it can.
    static var unavailableReason: String? {
        for program in [sshd, keygen] where !FileManager.default.isExecutableFile(atPath: program) {
            return "\(program) is not installed (apt-get install openssh-server)"
        }
        return nil
    }

    /// Generates the keys, writes the config and starts sshd on a free loopback port.
    static func start(in directory: URL) throws -> DemoSSHD {
        let user = DemoCluster.isRoot ? "root" : NSUserName()
        let server = DemoSSHD(directory: directory, user: user)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        chmod(directory.path, 0o755)
        if DemoCluster.isRoot {
            // sshd's privilege separation directory, missing in containers.
            try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        }
        for (type, name) in [("ed25519", "ssh_host_ed25519_key"), ("ecdsa", "ssh_host_ecdsa_key")] {
            try server.keygen(type: type, path: directory.appendingPathComponent(name).path)
        }
        try server.keygen(type: "ed25519", path: server.identity)
        try FileManager.default.copyItem(
            atPath: server.identity + ".pub", toPath: directory.appendingPathComponent("authorized_keys").path)
        var lastLog = ""
        for _ in 0..<10 {
            server.port = try freePort()
            try server.writeFiles()
            if try server.launch() { return server }
            lastLog = (try? String(contentsOf: server.log, encoding: .utf8)) ?? ""
            // Another process took the port between our check and sshd's bind: try another.
            guard lastLog.contains("Address already in use") || lastLog.contains("Cannot bind") else { break }
        }
        server.stop()
        throw DemoFailure("sshd did not start: \(HumanText.clip(lastLog, 400))")
    }

    /// Stops the listener (SIGTERM) and waits up to 10 s for it to go. Its per-connection
    /// processes end with their connections, which the demo's workers have closed.
    func stop() {
        guard let pid = listenerPID() else { return }
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(10)
        while Self.isAlive(pid), ContinuousClock.now < deadline { usleep(20_000) }
        if Self.isAlive(pid) { kill(pid, SIGKILL) }
        try? FileManager.default.removeItem(atPath: pidFile)
    }

    /// Starts the listener again on the same port, keys and config after `stop()`.
    func restart() throws {
        guard try launch() else { throw DemoFailure("sshd did not start again on port \(port)") }
    }

    /// The listener's pid from the pid file, if that process is alive.
    private func listenerPID() -> pid_t? {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
            let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0, Self.isAlive(pid)
        else { return nil }
        return pid
    }

    /// Alive and not a zombie (a container's init may never reap the daemonized sshd).
    private static func isAlive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return true }
        let state = stat[stat.index(after: close)...].split(separator: " ").first
        return state != "Z" && state != "X"
    }

    private func keygen(type: String, path: String) throws {
        try ExternalProgram(
            path: Self.keygen, arguments: ["-q", "-N", "", "-t", type, "-C", "lethe-demo", "-f", path]
        ).run()
    }

    private func writeFiles() throws {
        let text = """
            # Throwaway sshd for lethe demo's SFTP backup site.
            Port \(port)
            ListenAddress 127.0.0.1
            HostKey \(directory.path)/ssh_host_ed25519_key
            HostKey \(directory.path)/ssh_host_ecdsa_key
            PidFile \(directory.path)/sshd.pid
            AuthorizedKeysFile \(directory.path)/authorized_keys
            UsePAM no
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PubkeyAuthentication yes
            PermitRootLogin prohibit-password
            # The directory lives under world-writable /tmp.
            StrictModes no
            Subsystem sftp internal-sftp
            AllowUsers \(user)
            UseDNS no
            PrintMotd no

            """
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        var lines = ""
        for name in ["ssh_host_ed25519_key.pub", "ssh_host_ecdsa_key.pub"] {
            let key = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
                .split(separator: " ")
            lines += "[127.0.0.1]:\(port) \(key[0]) \(key[1])\n"
        }
        try lines.write(toFile: knownHosts, atomically: true, encoding: .utf8)
    }

    /// Runs `sshd -f CONF -E LOG` (it daemonizes); true once the daemon wrote its pid file and
    /// accepts connections, false when it gave up (the log says why).
    private func launch() throws -> Bool {
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        try? FileManager.default.removeItem(atPath: pidFile)
        try ExternalProgram(path: Self.sshd, arguments: ["-f", config, "-E", log.path]).run()
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if listenerPID() != nil, Self.accepts(port: port) { return true }
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            if text.contains("Address already in use") || text.contains("Cannot bind") { return false }
            usleep(50_000)
        }
        stop()
        throw DemoFailure("sshd on port \(port) did not accept connections within 30 s")
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

    /// A loopback port the kernel just handed out and nobody listens on.
    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw DemoFailure("socket failed: errno \(errno)") }
        defer { close(fd) }
        var address = loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw DemoFailure("bind to a free loopback port failed: errno \(errno)") }
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
