import BackupSites
import Foundation
import LetheCLI
import Postgres
import Store
import Worker

/// The archive part of `lethe bench archive`: a tenant's expired data from rows in
/// PostgreSQL to a file on an SFTP site, by a `lethe worker` and by the script an operator
/// would write instead (`psql \copy`, bsdtar, OpenSSH `sftp put`), timed side by side.
extension ArchiveBenchRun {
    /// Where both put their archives.
    struct SFTPTarget: Sendable {
        var url: BackupSiteURL
        var text: String
        var credentials: SiteCredentials
    }

    /// One tenant of the part: its account, what it holds, and its input to the script.
    struct EndToEndTenant: Sendable {
        var account: Int
        var label: String
    }

    /// One run of one side: seconds per step (plan/export, pack/compress, upload), the
    /// whole, and the worker's peak RSS in KiB (0 for the script).
    struct Timing {
        var steps: (Double, Double, Double)
        var total: Double
        var archiveBytes: Int64
        var peakKiB: Int = 0
    }

    /// Seeds a JSON-heavy tenant (`records` of messages) and a blob-heavy one (`recordings`
    /// of incompressible bytes), then times `runs` rounds of Lethe and the script on each.
    func endToEnd(records: Int64, recordings: Int64, site: SFTPTarget) async throws -> TextTable {
        var tenants: [EndToEndTenant] = []
        if records > 0 {
            Console.line("archive: seeding tenant 1 with about \(Self.megabytes(records)) MB of JSON records …")
            let rows = try await database.seedRecords(account: 1, bytes: records)
            tenants.append(.init(account: 1, label: "JSON records, \(rows.formatted()) rows"))
        }
        if recordings > 0 {
            Console.line("archive: seeding tenant 2 with \(Self.megabytes(recordings)) MB of recordings …")
            let count = try await database.seedRecordings(account: 2, bytes: recordings) { done in
                Console.line("  \(done) recordings")
            }
            tenants.append(.init(account: 2, label: "recordings, \(count) × 4 MiB"))
        }
        for tenant in tenants {
            try await database.enableArchiving(account: tenant.account, site: site.text, credentials: site.credentials)
        }
        let service = try writeServiceFile()
        var table = TextTable(
            "TENANT", "RUN", "WHO", "INPUT MB", "PLAN · COPY", "PACK · BSDTAR", "UPLOAD · SFTP", "TOTAL S", "MB/S",
            "VS SCRIPT", "PEAK RSS MB")
        for tenant in tenants {
            var lethe: [Timing] = []
            var script: [Timing] = []
            var input: Int64 = 0
            for run in 1...runs {
                let theirs = try await operatorScript(tenant, run: run, site: site, service: service)
                input = theirs.input
                script.append(theirs.timing)
                let ours = try await letheWorker(tenant, site: site)
                lethe.append(ours)
                Console.line(
                    "  tenant \(tenant.account) run \(run): lethe \(Self.format(ours.total)) s "
                        + "(plan \(Self.format(ours.steps.0)), pack \(Self.format(ours.steps.1)), "
                        + "upload \(Self.format(ours.steps.2))), script \(Self.format(theirs.timing.total)) s "
                        + "(copy \(Self.format(theirs.timing.steps.0)), bsdtar \(Self.format(theirs.timing.steps.1)), "
                        + "sftp \(Self.format(theirs.timing.steps.2)))")
                for (who, timing) in [("lethe worker", ours), ("operator script", theirs.timing)] {
                    table.add(
                        tenant.label, "\(run)", who, Self.megabytes(input), Self.format(timing.steps.0),
                        Self.format(timing.steps.1), Self.format(timing.steps.2), Self.format(timing.total),
                        String(format: "%.0f", Self.rate(input, timing.total)),
                        String(format: "%.2f×", theirs.timing.total / timing.total),
                        timing.peakKiB > 0 ? "\(timing.peakKiB / 1024)" : "")
                }
            }
            let ratio = { (ours: (Timing) -> Double, theirs: (Timing) -> Double) -> String in
                String(format: "%.2f×", Self.median(zip(lethe, script).map { theirs($0.1) / ours($0.0) }))
            }
            table.add(
                tenant.label, "median", "script ÷ lethe", "", ratio({ $0.steps.0 }, { $0.steps.0 }),
                ratio({ $0.steps.1 }, { $0.steps.1 }), ratio({ $0.steps.2 }, { $0.steps.2 }),
                "", "", "**" + ratio({ $0.total }, { $0.total }) + "**", "")
        }
        try? FileManager.default.removeItem(atPath: service)
        return table
    }

    static func format(_ seconds: Double) -> String { String(format: "%.2f", seconds) }

    // MARK: - Lethe

    /// A new archive job for the tenant, taken from planning to uploaded by one `lethe worker
    /// --until-idle`; the steps come from the job's timestamps. Its files are removed from the
    /// site and the spool and the job is deleted afterwards, so the next run starts alike.
    func letheWorker(_ tenant: EndToEndTenant, site: SFTPTarget) async throws -> Timing {
        let job = try await database.startJob(account: tenant.account)
        let launched = Date().timeIntervalSince1970
        let (seconds, peak) = try await runWorker(for: job, account: tenant.account, archiveYAML: "")
        let (times, names, size) = try await database.thread.run { connection in
            let row = try connection.query(
                """
                SELECT extract(epoch FROM planned_at)::float8, extract(epoch FROM packed_at)::float8,
                       extract(epoch FROM uploaded_at)::float8
                FROM lethe.archive_jobs WHERE job_id = $1
                """, [job.id])[0]
            let times = try row.decode((Double?, Double?, Double?).self)
            let files = try connection.query(
                "SELECT file_name, total_size FROM lethe.archive_files WHERE job_id = $1", [job.id]
            ).map { try $0.decode((String, Int64).self) }
            return (times, files.map(\.0), files.reduce(0) { $0 + $1.1 })
        }
        guard let planned = times.0, let packed = times.1, let uploaded = times.2 else {
            throw DemoFailure("archive job \(job.id) has no planned, packed or uploaded time")
        }
        let url = site.url
        let credentials = site.credentials
        try await DedicatedThread.run(name: "lethe-bench-cleanup") {
            let remote = try BackupSites.open(url, credentials: credentials, timeout: .seconds(60))
            defer { remote.close() }
            for name in names { try remote.remove(name) }
        }
        try? FileManager.default.removeItem(atPath: work + "/spool/" + job.id.uuidString.lowercased())
        try await database.thread.run { connection in
            try connection.execute("DELETE FROM lethe.archive_jobs WHERE job_id = $1", [job.id])
        }
        return Timing(
            steps: (planned - launched, packed - planned, uploaded - packed), total: seconds, archiveBytes: size,
            peakKiB: peak)
    }

    /// Lets one `lethe worker --until-idle` process take `job` (only it: other jobs wait and
    /// no retention check is due) from wherever it stands to `uploaded`. Returns the seconds
    /// it ran and its peak RSS in KiB; throws unless the job ended `uploaded`.
    func runWorker(for job: ArchiveJob, account: Int, archiveYAML: String) async throws -> (Double, Int) {
        try await database.thread.run { connection in
            try connection.execute(
                "UPDATE lethe.archive_jobs SET wake_at = NULL WHERE job_id <> $1 AND wake_at IS NOT NULL", [job.id])
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
        \(archiveYAML)
        \(ArchiveBenchDatabase.registryYAML)
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let outcome = try await Self.runSampled(
            executable, ["worker", "--until-idle", "--config", config],
            environment: ChildEnvironment.with(databaseURL: database.conninfo))
        let state = try await database.thread.run { connection in
            try connection.query("SELECT state FROM lethe.archive_jobs WHERE job_id = $1", [job.id])[0].decode(
                String.self, at: 0)
        }
        guard state == "uploaded" else {
            throw DemoFailure("the worker left archive job \(job.id) in state \(state), not uploaded")
        }
        return outcome
    }

    // MARK: - The operator's script

    /// `psql \copy` of the tenant's expired rows as JSON lines (and its blobs' bytes in one
    /// binary COPY file), bsdtar with Lethe's encryption and level, `sftp put`: one step at a
    /// time, as a script runs them. Returns the timing and the bytes it exported.
    func operatorScript(
        _ tenant: EndToEndTenant, run: Int, site: SFTPTarget, service: String
    ) async throws -> (timing: Timing, input: Int64) {
        let directory = work + "/script-\(tenant.account)"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(
            atPath: directory + "/files", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let commands = directory + "/export.psql"
        try Self.exportCommands(account: tenant.account, into: directory + "/files").write(
            toFile: commands, atomically: true, encoding: .utf8)
        let copy = try await DedicatedThread.run(name: "lethe-bench-psql") {
            try ExternalProgram(
                path: "/usr/bin/psql",
                arguments: ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "service=lethe_bench", "-f", commands],
                environment: ProcessInfo.processInfo.environment.merging(["PGSERVICEFILE": service]) { $1 }
            ).run()
        }
        var input: Int64 = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: directory + "/files") {
            let path = directory + "/files/" + name
            let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0
            // An empty export (a tenant without attachments) would be an empty, unencrypted entry.
            if size == 0 { try FileManager.default.removeItem(atPath: path) }
            input += size
        }
        guard input > 0 else { throw DemoFailure("psql exported nothing for tenant \(tenant.account)") }
        let zip = directory + "/archive.zip"
        let (key, level) = (database.archiveKey, compressionLevel)
        let tar = try await DedicatedThread.run(name: "lethe-bench-bsdtar") {
            try ExternalProgram(
                path: "/usr/bin/bsdtar",
                arguments: [
                    "--format", "zip", "--options", "zip:encryption=aes256,zip:compression-level=\(level)", "-cf",
                    zip, "-C", directory + "/files", ".",
                ],
                launcher: ExternalProgram.newSession
            ).run(input: Data((key + "\n" + key + "\n").utf8))
        }
        if run == 1 {
            try await DedicatedThread.run(name: "lethe-bench-check") { try Self.checkEncrypted(zip, key: key) }
        }
        let size = ((try FileManager.default.attributesOfItem(atPath: zip))[.size] as? NSNumber)?.int64Value ?? 0
        let put = try await sftpPut(
            zip, size: size, as: "script-\(tenant.account)-\(run)-\(UUID().uuidString.prefix(8)).zip", to: site,
            batch: directory + "/sftp.batch")
        return (
            Timing(
                steps: (copy.seconds, tar.seconds, put), total: copy.seconds + tar.seconds + put, archiveBytes: size),
            input
        )
    }

    /// The psql commands that export `account`'s expired conversations, messages,
    /// attachments and the blob rows they reference as JSON lines, and those blobs' bytes.
    static func exportCommands(account: Int, into directory: String) -> String {
        let expired = "c.account_id = \(account) AND c.ended_at < now() - interval '1 year'"
        let messages = "app.messages m JOIN app.conversations c ON c.id = m.conversation_id"
        let attachments = "app.message_attachments a JOIN \(messages) ON m.id = a.message_id"
        let blobs = """
            app.blobs b WHERE b.account_id = \(account) AND b.id IN (\
            SELECT c.recording_blob_id FROM app.conversations c WHERE \(expired) \
            UNION ALL SELECT a.blob_id FROM \(attachments) WHERE \(expired))
            """
        return """
            \\copy (SELECT row_to_json(c) FROM app.conversations c WHERE \(expired)) TO '\(directory)/conversations.json'
            \\copy (SELECT row_to_json(m) FROM \(messages) WHERE \(expired)) TO '\(directory)/messages.json'
            \\copy (SELECT row_to_json(a) FROM \(attachments) WHERE \(expired)) TO '\(directory)/attachments.json'
            \\copy (SELECT to_jsonb(b) - 'content' FROM \(blobs)) TO '\(directory)/blobs.json'
            \\copy (SELECT b.id, b.content FROM \(blobs) AND b.content IS NOT NULL) TO '\(directory)/blob-contents.bin' WITH (FORMAT binary)

            """
    }

    /// A libpq service file (mode 0600) naming the scratch database as `lethe_bench`, so psql
    /// connects without the connection string (and any password) on its command line.
    func writeServiceFile() throws -> String {
        let path = work + "/pg_service.conf"
        let lines = try ConnectionString.keywords(database.conninfo).map { keyword, value in
            guard !value.contains("\n"), !value.contains("\r") else {
                throw DemoFailure("the connection's \(keyword) holds a line break; psql cannot be given it")
            }
            return "\(keyword)=\(value)"
        }
        guard
            FileManager.default.createFile(
                atPath: path, contents: Data((["[lethe_bench]"] + lines + [""]).joined(separator: "\n").utf8),
                attributes: [.posixPermissions: 0o600])
        else { throw DemoFailure("cannot write \(path)") }
        return path
    }
}
