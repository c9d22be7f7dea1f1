import Archive
import ArchiveFormat
import BackupSites
import Foundation
import LetheCLI
import Postgres
import Store
import Worker

/// The three parts of `lethe bench archive`, each returning its table (the archive part: ArchiveBenchEndToEnd.swift).
struct ArchiveBenchRun: Sendable {
    let database: ArchiveBenchDatabase
    /// Scratch files: the spool, sites, the script's exports, the upload file.
    let work: String
    let compressionLevel: Int
    let runs: Int
    /// This `lethe` binary, for the worker processes.
    let executable: String

    /// Decimal megabytes, as the tables show them.
    static func megabytes(_ bytes: Int64) -> String { String(format: "%.1f", Double(bytes) / 1e6) }
    static func rate(_ bytes: Int64, _ seconds: Double) -> Double { Double(bytes) / 1e6 / max(seconds, 1e-6) }
    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }

    /// Refuses a baseline archive whose files are not encrypted (a bsdtar that ignored the option).
    static func checkEncrypted(_ path: String, key: String) throws {
        let reader = try ZipReader(openingFileAt: path, passphrase: key)
        defer { reader.close() }
        var files = 0
        while let entry = try reader.nextEntry() {
            if entry.name.hasSuffix("/") { continue }
            guard entry.isEncrypted else { throw DemoFailure("bsdtar wrote \(entry.name) unencrypted into \(path)") }
            files += 1
        }
        guard files > 0 else { throw DemoFailure("bsdtar wrote no files into \(path)") }
    }

    // MARK: - Upload

    /// One file to the SFTP server: Lethe's site upload beside OpenSSH's sftp.
    func upload(size: Int64, site: SFTPTarget) async throws -> TextTable {
        let (url, credentials) = (site.url, site.credentials)
        let file = work + "/upload.bin"
        Console.line("upload: writing \(Self.megabytes(size)) MB of random bytes to \(file) …")
        try await DedicatedThread.run(name: "lethe-bench-random") { try Self.writeRandom(size, to: file) }
        let batch = work + "/sftp.batch"
        var table = TextTable("UPLOAD", "RUN", "MB", "SECONDS", "MB/S", "VS SFTP")
        var ratios: [Double] = []
        for run in 1...runs {
            let name = "lethe-bench-\(run)-\(UUID().uuidString.prefix(8)).bin"
            let lethe = try await DedicatedThread.run(name: "lethe-bench-upload") { () throws -> Double in
                let started = ContinuousClock.now
                let site = try BackupSites.open(url, credentials: credentials, timeout: .seconds(300))
                defer { site.close() }
                let stored = try site.upload(localFile: file, name: name)
                let seconds = RetentionBench.seconds(ContinuousClock.now - started)
                guard stored == size else { throw DemoFailure("\(url) holds \(stored) bytes of \(name), not \(size)") }
                try site.remove(name)
                return seconds
            }
            let openssh = try await sftpPut(
                file, size: size, as: "openssh-bench-\(run)-\(UUID().uuidString.prefix(8)).bin",
                to: site, batch: batch)
            ratios.append(openssh / lethe)
            Console.line(
                "  run \(run): lethe \(String(format: "%.2f", lethe)) s, sftp \(String(format: "%.2f", openssh)) s")
            table.add(
                "lethe: SFTP site (4 MiB in flight, fsync, rename, stat)", "\(run)", Self.megabytes(size),
                String(format: "%.2f", lethe), String(format: "%.0f", Self.rate(size, lethe)),
                String(format: "%.2f×", openssh / lethe))
            table.add(
                "OpenSSH sftp put (defaults)", "\(run)", Self.megabytes(size), String(format: "%.2f", openssh),
                String(format: "%.0f", Self.rate(size, openssh)), "1.00×")
        }
        table.add("median: lethe ÷ sftp", "", "", "", "", String(format: "%.2f×", Self.median(ratios)))
        try? FileManager.default.removeItem(atPath: file)
        try? FileManager.default.removeItem(atPath: batch)
        return table
    }

    /// OpenSSH's `sftp put` of `file` (its defaults, one batch command) as `name` in the
    /// site's directory; checks the size it left there and removes it. Returns its seconds.
    func sftpPut(
        _ file: String, size: Int64, as name: String, to site: SFTPTarget, batch: String
    ) async throws
        -> Double
    {
        let (url, credentials) = (site.url, site.credentials)
        let remote = url.path == "/" ? "/\(name)" : "\(url.path)/\(name)"
        try "put \"\(file)\" \"\(remote)\"\n".write(toFile: batch, atomically: true, encoding: .utf8)
        return try await DedicatedThread.run(name: "lethe-bench-sftp") { () throws -> Double in
            let outcome = try ExternalProgram(
                path: "/usr/bin/sftp",
                arguments: [
                    "-q", "-b", batch, "-P", "\(url.port)", "-i", credentials.identityFile ?? "",
                    "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                    "-o", "UserKnownHostsFile=\(credentials.knownHostsFile ?? "")",
                    "-o", "GlobalKnownHostsFile=/dev/null", "\(url.user ?? "")@\(url.host ?? "")",
                ]
            ).run()
            let site = try BackupSites.open(url, credentials: credentials, timeout: .seconds(60))
            defer { site.close() }
            let stored = try site.size(of: name)
            guard stored == size else {
                throw DemoFailure("sftp left \(stored.map(String.init) ?? "no") bytes in \(remote), not \(size)")
            }
            try site.remove(name)
            return outcome.seconds
        }
    }

    /// `size` random bytes into `path`, 1 MiB at a time.
    static func writeRandom(_ size: Int64, to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil),
            let handle = FileHandle(forWritingAtPath: path)
        else { throw DemoFailure("cannot create \(path)") }
        defer { try? handle.close() }
        var generator = SystemRandomNumberGenerator()
        var words = [UInt64](repeating: 0, count: (1 << 20) / 8)
        var left = size
        while left > 0 {
            for index in words.indices { words[index] = generator.next() }
            let chunk = words.withUnsafeBytes { Data($0.prefix(Int(min(left, 1 << 20)))) }
            try handle.write(contentsOf: chunk)
            left -= Int64(chunk.count)
        }
    }

    // MARK: - Memory

    /// The goal for a worker's peak RSS while archiving, whatever the size (MB).
    static let memoryGoalMB = 100

    /// For each size: a worker process archives that much data, half JSON records and half
    /// incompressible recordings; its peak RSS against `memoryGoalMB`.
    func memory(sizes: [Int64]) async throws -> TextTable {
        var table = TextTable(
            "MEMORY", "ARCHIVE MB", "ROWS", "RECORDINGS", "SECONDS", "MB/S", "PEAK RSS MB",
            "GOAL < \(Self.memoryGoalMB) MB")
        for (index, size) in sizes.enumerated() {
            let account = 101 + index
            // Half the size as JSON records (conversations, messages), half as recordings.
            Console.line("memory: seeding tenant \(account) with \(Self.megabytes(size / 2)) MB of records …")
            let rows = try await database.seedRecords(account: account, bytes: size / 2)
            Console.line("memory: and with \(Self.megabytes(size - size / 2)) MB of recordings …")
            let count = try await database.seedRecordings(account: account, bytes: size - size / 2) { done in
                Console.line("  \(done) recordings")
            }
            try await database.enableArchiving(account: account, site: "file://" + work + "/site-\(account)")
            let job = try await database.startJob(account: account)
            Console.line("  lethe worker --until-idle: archiving and uploading …")
            let (seconds, peak) = try await runWorker(for: job, account: account, archiveYAML: "  split_size: 1TB")
            let archived = try await database.thread.run { connection in
                try connection.query(
                    "SELECT coalesce(sum(total_size), 0)::bigint FROM lethe.archive_files WHERE job_id = $1", [job.id]
                )[0].decode(Int64.self, at: 0)
            }
            Console.line(
                "  \(Self.megabytes(archived)) MB archive in \(String(format: "%.1f", seconds)) s, peak RSS \(peak / 1024) MB"
            )
            table.add(
                "lethe worker: rows and recordings to an uploaded AES-256 ZIP", Self.megabytes(archived), "\(rows)",
                "\(count)", String(format: "%.1f", seconds), String(format: "%.0f", Self.rate(archived, seconds)),
                "\(peak / 1024)", peak / 1024 < Self.memoryGoalMB ? "met" : "MISSED")
            try? FileManager.default.removeItem(atPath: work + "/site-\(account)")
            try? FileManager.default.removeItem(atPath: work + "/spool/" + job.id.uuidString.lowercased())
        }
        return table
    }

    /// Runs `executable arguments…` to completion while sampling its VmHWM (peak resident
    /// set, KiB) every 20 ms; returns the seconds it ran and the highest value read.
    static func runSampled(
        _ executable: String, _ arguments: [String], environment: [String: String]
    ) async throws -> (Double, Int) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        let started = ContinuousClock.now
        try process.run()
        var peak = 0
        while process.isRunning {
            if let value = highWaterMark(process.processIdentifier) { peak = max(peak, value) }
            try await Task.sleep(for: .milliseconds(20))
        }
        let seconds = RetentionBench.seconds(ContinuousClock.now - started)
        guard process.terminationStatus == 0 else {
            throw DemoFailure("\(executable) \(arguments.joined(separator: " ")) exited \(process.terminationStatus)")
        }
        return (seconds, peak)
    }

    /// VmHWM of a running process in KiB, from /proc/PID/status.
    static func highWaterMark(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return nil }
        return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
    }
}
