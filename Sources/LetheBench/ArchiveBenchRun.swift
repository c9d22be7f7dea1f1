import Archive
import ArchiveFormat
import BackupSites
import Foundation
import LetheCLI
import Postgres
import Store
import Worker

/// The three parts of `lethe bench archive`, each returning its table.
struct ArchiveBenchRun: Sendable {
    let database: ArchiveBenchDatabase
    /// Scratch files: the spool, sites, extracted entries, the upload file.
    let work: String
    let compressionLevel: Int
    let runs: Int
    /// This `lethe` binary, for the worker process of the memory part.
    let executable: String

    /// Decimal megabytes, as the tables show them.
    static func megabytes(_ bytes: Int64) -> String { String(format: "%.1f", Double(bytes) / 1e6) }
    static func rate(_ bytes: Int64, _ seconds: Double) -> Double { Double(bytes) / 1e6 / max(seconds, 1e-6) }
    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }

    // MARK: - Archive

    /// Tenant 1's records: Lethe's packing (rows to finished ZIP) beside bsdtar on the same entries.
    func archive(records: Int64) async throws -> TextTable {
        Console.line("archive: seeding tenant 1 with about \(Self.megabytes(records)) MB of JSON records …")
        let seeded = ContinuousClock.now
        let rows = try await database.seedRecords(account: 1, bytes: records)
        try await database.enableArchiving(account: 1, site: work + "/site-1")
        Console.line("  \(rows) rows seeded in \(DemoCommand.seconds(ContinuousClock.now - seeded))")
        let job = try await database.startJob(account: 1)
        let jobs = ArchiveJobs(registry: database.registry, maxRootsPerType: Int(Int32.max))
        let planning = ContinuousClock.now
        try await database.thread.run { try jobs.plan(job, on: $0) }
        let planned = RetentionBench.seconds(ContinuousClock.now - planning)
        Console.line(
            "  job \(job.id) planned (keys and hashes of \(rows) rows recorded) in \(String(format: "%.2f", planned)) s"
        )

        let packer = ArchivePacker(
            jobs: jobs,
            settings: .init(spoolDirectory: work + "/spool", splitSize: 1 << 50, compressionLevel: compressionLevel))
        let (key, level) = (database.archiveKey, compressionLevel)
        let entries = work + "/entries"
        let output = work + "/bsdtar.zip"
        var input: Int64 = 0
        var leth: [(seconds: Double, size: Int64)] = []
        var copies: [Double] = []
        var baseline: [(seconds: Double, size: Int64)] = []
        for run in 1...runs {
            let packed = try await database.thread.run { connection in
                let started = ContinuousClock.now
                let files = try connection.withTransaction(.repeatableRead) { connection in
                    try packer.pack(job, passphrase: key, on: connection)
                }
                return (RetentionBench.seconds(ContinuousClock.now - started), files)
            }
            let paths = packed.1.map { packer.directory(for: job) + "/" + $0.name }
            if run == 1 {
                // The baseline's input: the very entries Lethe wrote, read back and verified.
                input = try await DedicatedThread.run(name: "lethe-bench-extract") {
                    try Self.extract(paths, key: key, into: entries)
                }
                Console.line("  \(Self.megabytes(input)) MB of entries extracted for bsdtar into \(entries)")
            }
            leth.append((packed.0, packed.1.reduce(0) { $0 + $1.size }))
            Console.line(
                "  run \(run): lethe \(String(format: "%.2f", packed.0)) s (\(String(format: "%.0f", Self.rate(input, packed.0))) MB/s)"
            )

            try? FileManager.default.removeItem(atPath: output)
            let tar = try await DedicatedThread.run(name: "lethe-bench-bsdtar") {
                try ExternalProgram(
                    path: "/usr/bin/bsdtar",
                    arguments: [
                        "--format", "zip", "--options", "zip:encryption=aes256,zip:compression-level=\(level)", "-cf",
                        output, "-C", entries, ".",
                    ],
                    launcher: ExternalProgram.newSession
                ).run(input: Data((key + "\n" + key + "\n").utf8))
            }
            if run == 1 {
                try await DedicatedThread.run(name: "lethe-bench-check") {
                    try Self.checkEncrypted(output, key: key)
                }
            }
            let size =
                ((try? FileManager.default.attributesOfItem(atPath: output))?[.size] as? NSNumber)?.int64Value ?? 0
            baseline.append((tar.seconds, size))
            Console.line(
                "  run \(run): bsdtar \(String(format: "%.2f", tar.seconds)) s (\(String(format: "%.0f", Self.rate(input, tar.seconds))) MB/s)"
            )
            copies.append(try await database.thread.run { try Self.copyAlone(job, jobs: jobs, on: $0) })
            Console.line("  run \(run): PostgreSQL's COPY alone \(String(format: "%.2f", copies.last!)) s")
        }
        try? FileManager.default.removeItem(atPath: packer.directory(for: job))
        try? FileManager.default.removeItem(atPath: entries)
        try? FileManager.default.removeItem(atPath: output)

        var table = TextTable("ARCHIVE", "RUN", "INPUT MB", "SECONDS", "MB/S", "VS BSDTAR", "ZIP MB")
        let bsdtarMedian = Self.median(baseline.map(\.seconds))
        for (index, ((lethe, tar), copy)) in zip(zip(leth, baseline), copies).enumerated() {
            table.add(
                "lethe: rows to ZIP (COPY, check, deflate, AES-256)", "\(index + 1)", Self.megabytes(input),
                String(format: "%.2f", lethe.seconds), String(format: "%.0f", Self.rate(input, lethe.seconds)),
                String(format: "%.2f×", tar.seconds / lethe.seconds), Self.megabytes(lethe.size))
            table.add(
                "postgresql: the same COPYs, output dropped", "\(index + 1)", Self.megabytes(input),
                String(format: "%.2f", copy), String(format: "%.0f", Self.rate(input, copy)),
                String(format: "%.2f×", tar.seconds / copy), "")
            table.add(
                "bsdtar: files to ZIP (deflate, AES-256)", "\(index + 1)", Self.megabytes(input),
                String(format: "%.2f", tar.seconds), String(format: "%.0f", Self.rate(input, tar.seconds)), "1.00×",
                Self.megabytes(tar.size))
        }
        let letheMedian = Self.median(leth.map(\.seconds))
        table.add(
            "median: lethe end to end ÷ bsdtar", "", "", "", "", String(format: "%.2f×", bsdtarMedian / letheMedian), ""
        )
        return table
    }

    /// The packer's COPY statements in one REPEATABLE READ transaction, their output counted
    /// and dropped: what the database alone takes to hand the rows over. Returns seconds.
    static func copyAlone(_ job: ArchiveJob, jobs: ArchiveJobs, on connection: Connection) throws -> Double {
        let started = ContinuousClock.now
        try connection.withTransaction(.repeatableRead) { connection in
            let literal = try connection.literal(job.id.uuidString.lowercased())
            try connection.execute("SELECT set_config('enable_sort', 'off', true)")  // as the packer does
            var statements = jobs.registry.blobStores.values.map { $0.exportRows(jobLiteral: literal) }
            for type in jobs.types {
                statements += type.tables.indices.map { type.exportRows($0, jobLiteral: literal) }
            }
            var bytes = 0
            for sql in statements { try connection.copyOut(sql) { bytes += $0.count } }
            guard bytes > 0 else { throw DemoFailure("the COPY statements of job \(job.id) returned nothing") }
        }
        return RetentionBench.seconds(ContinuousClock.now - started)
    }

    /// Writes the parts' entries into `directory` (verifying every checksum); returns the bytes
    /// of the entries (manifest.json aside).
    static func extract(_ paths: [String], key: String, into directory: String) throws -> Int64 {
        try? FileManager.default.removeItem(atPath: directory)
        let sink = ExtractSink(directory: directory)
        try sink.createDirectory()
        var bytes: Int64 = 0
        for (index, path) in paths.enumerated() {
            sink.part = index + 1
            bytes +=
                try ArchivePartScan.scan(
                    ArchiveFile(path: path), key: .init(secret: key, source: "the benchmark's key"), into: sink
                ).bytes
        }
        return bytes
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
    func upload(size: Int64, url: BackupSiteURL, credentials: SiteCredentials) async throws -> TextTable {
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
            let other = "openssh-bench-\(run)-\(UUID().uuidString.prefix(8)).bin"
            let remote = url.path == "/" ? "/\(other)" : "\(url.path)/\(other)"
            try "put \"\(file)\" \"\(remote)\"\n".write(toFile: batch, atomically: true, encoding: .utf8)
            let openssh = try await DedicatedThread.run(name: "lethe-bench-sftp") { () throws -> Double in
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
                let stored = try site.size(of: other)
                guard stored == size else {
                    throw DemoFailure("sftp left \(stored.map(String.init) ?? "no") bytes in \(remote), not \(size)")
                }
                try site.remove(other)
                return outcome.seconds
            }
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
            try await database.enableArchiving(account: account, site: work + "/site-\(account)")
            let job = try await database.startJob(account: account)
            try await database.thread.run { connection in
                // Only this job: the leader's tick enqueues one archive task for it, and no
                // retention check is due (the worker would wait for a coordinator to run it).
                try connection.execute(
                    "UPDATE lethe.archive_jobs SET wake_at = NULL WHERE account_id <> $1", ["\(account)"])
                try connection.execute("UPDATE lethe.retention_runs SET next_run_at = now() + interval '1 day'")
                _ = try ArchiveSchedule(maxAttempts: 3).tick(on: connection)
            }
            let config = work + "/worker-\(account).yml"
            try """
            log: { level: warning }
            worker: { concurrency: 1, task_budget: 1h, poll_interval: 100ms }
            archive:
              master_key_file: \(database.masterKeyPath)
              spool_directory: \(work)/spool
              compression_level: \(compressionLevel)
              split_size: 1TB
            \(ArchiveBenchDatabase.registryYAML)
            """.write(toFile: config, atomically: true, encoding: .utf8)
            Console.line("  lethe worker --until-idle: archiving and uploading …")
            let (seconds, peak) = try await Self.runSampled(
                executable, ["worker", "--until-idle", "--config", config],
                environment: ChildEnvironment.with(databaseURL: database.conninfo))
            let (state, archived) = try await database.thread.run { connection in
                try connection.query(
                    """
                    SELECT j.state, coalesce(sum(f.total_size), 0)::bigint
                    FROM lethe.archive_jobs j LEFT JOIN lethe.archive_files f ON f.job_id = j.job_id
                    WHERE j.job_id = $1 GROUP BY j.state
                    """, [job.id])[0].decode((String, Int64).self)
            }
            guard state == "uploaded" else {
                throw DemoFailure("the worker left archive job \(job.id) in state \(state), not uploaded")
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
