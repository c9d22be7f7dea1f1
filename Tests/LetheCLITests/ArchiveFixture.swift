import Foundation
import Postgres
import Store
import TestSupport

@testable import LetheConfiguration

/// The example application with two accounts, a master key, an archive key and a config
/// for archiving account 1, for the archive tests. Every process output is kept so a test
/// can check that no secret ever reached it.
final class ArchiveFixture: @unchecked Sendable {
    /// The account's archive key (the tests pass it to bsdtar and 7z themselves; Lethe never does).
    static let archiveKey = "Archive-Key-2026"
    /// The application tables whose rows the tests compare, with their account column.
    static let tables = [
        "app.conversations", "app.messages", "app.message_attachments", "app.blobs", "app.audit_log",
        "app.webhook_calls", "app.person_presences", "app.persons", "app.device_infos", "app.staff",
        "app.external_contacts", "app.enquiries", "app.article_versions",
    ]

    let database: TestDatabase
    let connection: Connection
    let directory: URL
    let configPath: String
    let masterKeyHex: String
    let keyFile: String
    /// A file:// backup site on this machine.
    let siteDirectory: String
    private let lock = NSLock()
    private var outputs: [String] = []

    /// Loads the example schema and seed (accounts 1 and 2), writes the keys and the config
    /// (`extra` is added to its `archive:` section; `edit` may change the whole text), adds both
    /// accounts and sets the shortest intervals for account 1; an operator disabled retention
    /// for account 2, so nothing of it may go. The lease is short for the crash tests; a
    /// worker starved of CPU by the rest of the suite can lose it, and the task's further
    /// attempts, spread over a few seconds, absorb that and any other passing failure as they
    /// would in production (where `max_attempts` is 20).
    init(
        database: TestDatabase, scale: Int = 200, maxAttempts: Int = 5, extra: String = "",
        edit: (String) -> String = { $0 }
    ) throws {
        self.database = database
        connection = try database.connect()
        try ExampleApplication.load(on: connection, tenants: 2, scale: scale)
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-archive-\(UUID().uuidString)")
        siteDirectory = directory.appendingPathComponent("site").path
        try FileManager.default.createDirectory(atPath: siteDirectory, withIntermediateDirectories: true)
        masterKeyHex = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        let masterPath = directory.appendingPathComponent("master.key").path
        try (masterKeyHex + "\n").write(toFile: masterPath, atomically: true, encoding: .utf8)
        chmod(masterPath, 0o600)
        keyFile = directory.appendingPathComponent("archive.key").path
        try (Self.archiveKey + "\n").write(toFile: keyFile, atomically: true, encoding: .utf8)
        let registry = try ExampleApplication.registry()
        configPath = try writeConfig(
            edit(
                """
                database: { url: "\(database.url)" }
                coordinator: { tick_interval: 200ms }
                worker: { poll_interval: 200ms, lease: 3s, heartbeat_interval: 500ms, rescue_interval: 1s }
                queue: { max_attempts: \(maxAttempts), retry_base: 100ms, retry_max: 1s }
                archive:
                  master_key_file: \(masterPath)
                  spool_directory: \(directory.appendingPathComponent("spool").path)
                  site_timeout: 5s
                  upload_attempts: 2
                \(extra)
                \(registry)
                """))
        try expectSuccess(["policy", "sync"])
        try expectSuccess(["account", "add", "1", "2"])
        try connection.execute("UPDATE lethe.accounts SET retention_disabled = true WHERE account_id = '2'")
        try connection.execute(
            "SELECT lethe.set_policy('1', t.name, t.min_interval) FROM lethe.entity_types t WHERE t.deletes")
    }

    deinit {
        connection.close()
        try? FileManager.default.removeItem(atPath: configPath)
        try? FileManager.default.removeItem(at: directory)
    }

    /// `lethe arguments… --config FILE`, its output kept for the secret check.
    @discardableResult
    func lethe(_ arguments: [String], environment: [String: String] = [:]) throws -> ProcessResult {
        let result = try LetheProcess.run(arguments + ["--config", configPath], environment: environment)
        lock.withLock { outputs.append(result.output) }
        return result
    }

    /// Runs `lethe …` and fails the test setup unless it exits 0.
    @discardableResult
    func expectSuccess(_ arguments: [String]) throws -> ProcessResult {
        let result = try lethe(arguments)
        guard result.status == 0 else {
            throw TestSetupError("lethe \(arguments.joined(separator: " ")) exited \(result.status):\n\(result.output)")
        }
        return result
    }

    /// Keeps the output of a process the test ran itself (a killed worker's log).
    func keep(_ output: String) { lock.withLock { outputs.append(output) } }

    /// Turns archiving on for account 1 with the archive key.
    func enableArchiving() throws {
        try expectSuccess(["account", "archive", "1", "--key-file", keyFile, "--enable"])
    }

    /// Adds the file:// site of this fixture.
    func addFileSite() throws { try expectSuccess(["account", "site", "add", "1", "file://\(siteDirectory)"]) }

    /// Adds an sftp:// site on the shared test sshd (or another port and known_hosts).
    func addSFTPSite(host: String? = nil, port: Int? = nil, knownHosts: String? = nil) throws {
        let server = try TestSSHServer.fromEnvironment()
        try expectSuccess([
            "account", "site", "add", "1",
            "sftp://\(server.user)@\(host ?? server.host):\(port ?? server.port)\(server.root)",
            "--identity", server.keyPath, "--known-hosts", knownHosts ?? server.knownHostsPath,
        ])
    }

    /// `lethe run --until-idle` (coordinator and worker), which must exit 0.
    func runUntilIdle() throws {
        try expectSuccess(["run", "--until-idle", "--log-level", "debug"])
    }

    /// Starts an archive job for account 1 now; returns its id.
    func startJob() throws -> String {
        try expectSuccess(["archive", "run", "--account", "1"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Extracts every file of `job` from this fixture's site into a new directory; returns it.
    func extract(job: String) throws -> String {
        let target = directory.appendingPathComponent("extracted-\(UUID().uuidString.prefix(8))").path
        let files = try files(job: job).map { "\(siteDirectory)/\($0.name)" }
        try expectSuccess(["archive", "extract", "--to", target] + files)
        return target
    }

    /// The manifest's hash of `blob` in `job`: nil when the blob is not in it, `.some(nil)`
    /// when its hash was cleared.
    func blobHash(job: String, blob: Int64) throws -> String?? {
        try connection.query(
            "SELECT row_hash FROM lethe.archive_manifest_blobs WHERE job_id = $1::uuid AND blob_key = $2",
            [job, "\(blob)"]
        ).first.map { try $0.decode(String?.self, at: 0) }
    }

    /// The archive jobs of the registry in this fixture's config, compiled against the database.
    func archiveJobs() throws -> ArchiveJobs {
        let text = try String(contentsOfFile: configPath, encoding: .utf8)
        let registry = try Configuration.parse(text, source: configPath).registry
        return ArchiveJobs(registry: try RegistryCatalog.compile(registry, on: connection), maxRootsPerType: 1_000_000)
    }

    /// Account 1's open archive job `id`, to plan or pack in the test's own process.
    func openJob(_ id: String, of jobs: ArchiveJobs) throws -> ArchiveJob {
        guard
            let job = try jobs.openJobs(account: "1", on: connection).first(where: {
                $0.id.uuidString.lowercased() == id
            })
        else { throw TestSetupError("archive job \(id) is not open") }
        return job
    }

    /// Snapshots every application table's ids as `before_<table>` for later comparison.
    func snapshot() throws {
        for table in Self.tables {
            try connection.execute(
                "CREATE TABLE \(Self.snapshotName(table)) AS SELECT id, account_id, md5(t::text) AS h FROM \(table) t")
        }
    }

    static func snapshotName(_ table: String) -> String {
        "public.before_" + table.replacingOccurrences(of: "app.", with: "")
    }

    /// Account `account`'s rows that were in the snapshot and are gone now, per table.
    func gone(account: Int) throws -> [String: [Int64]] {
        var out: [String: [Int64]] = [:]
        for table in Self.tables {
            let ids = try connection.query(
                """
                SELECT b.id FROM \(Self.snapshotName(table)) b
                WHERE b.account_id = $1 AND NOT EXISTS (SELECT 1 FROM \(table) t WHERE t.id = b.id)
                ORDER BY b.id
                """, [account]
            ).map { try $0.decode(Int64.self, at: 0) }
            if !ids.isEmpty { out[table] = ids }
        }
        return out
    }

    /// A checksum of every row of an account's tables (content included).
    func checksum(account: Int) throws -> String {
        try Self.tables.map { table in
            try connection.scalar(
                "SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY id)), '-') FROM \(table) t WHERE account_id = $1",
                [account], as: String.self)
        }.joined(separator: " ")
    }

    /// The job's manifest as `table → keys`, via the registry's table order.
    func manifest(job: String) throws -> Set<String> {
        Set(
            try connection.query(
                "SELECT entity_type || '/' || table_index || '/' || row_key FROM lethe.archive_manifest WHERE job_id = $1::uuid",
                [job]
            ).map { try $0.decode(String.self, at: 0) })
    }

    /// The ids of `table` in the job's manifest (table_index from the example's tree).
    func manifestIDs(job: String, type: String, index: Int) throws -> Set<Int64> {
        Set(
            try connection.query(
                """
                SELECT row_key::bigint FROM lethe.archive_manifest
                WHERE job_id = $1::uuid AND entity_type = $2 AND table_index = $3
                """, [job, type, index]
            ).map { try $0.decode(Int64.self, at: 0) })
    }

    /// The job's files: (id, name, status, size, sha256).
    func files(job: String) throws -> [(id: Int64, name: String, status: String, size: Int64?, sha256: String?)] {
        try connection.query(
            "SELECT id, file_name, status, total_size, sha256 FROM lethe.backup_log WHERE job_id = $1::uuid ORDER BY part",
            [job]
        ).map { row in
            let (id, name, status, size, sha) = try row.decode((Int64, String, String, Int64?, String?).self)
            return (id, name, status, size, sha)
        }
    }

    func jobState(_ job: String) throws -> String {
        try connection.scalar("SELECT state FROM lethe.archive_jobs WHERE job_id = $1::uuid", [job])
    }

    /// Approves the job's deletion ahead (as `lethe archive approve` does, by SQL).
    func preApprove(_ job: String) throws {
        try connection.execute("UPDATE lethe.archive_jobs SET approved_at = now() WHERE job_id = $1::uuid", [job])
    }

    /// What a failed expectation needs to be understood: the tasks, the jobs and the output
    /// of the last process the fixture ran.
    func diagnostics() -> String {
        let state =
            (try? connection.query(
                """
                SELECT 'task ' || kind || ' ' || coalesce(account_id, '-') || ' ' || state || ' attempts '
                       || attempts || ' ' || coalesce(last_error, '') FROM lethe.tasks
                UNION ALL SELECT 'job ' || job_id || ' ' || state || ' ' || coalesce(note, '') FROM lethe.archive_jobs
                """
            ).map { try $0.decode(String.self, at: 0) }) ?? ["(could not read the tasks and jobs)"]
        let last = lock.withLock { outputs.last ?? "" }
        let problems = last.split(separator: "\n").filter {
            $0.contains("warning") || $0.contains("error") || $0.contains("notice") || $0.contains("lost")
        }
        return
            (state + ["problems in the last output:"] + problems.map(String.init)
            + ["its end:", String(last.suffix(1500))]).joined(separator: "\n")
    }

    /// Everything any process printed, every task error and every backup log error: where
    /// a leaked secret would show.
    func everythingLogged() throws -> String {
        let stored = try connection.query(
            """
            SELECT coalesce(string_agg(coalesce(last_error, ''), E'\\n'), '') FROM lethe.tasks
            UNION ALL SELECT coalesce(string_agg(coalesce(error, ''), E'\\n'), '') FROM lethe.backup_log
            UNION ALL SELECT coalesce(string_agg(coalesce(error, ''), E'\\n'), '') FROM lethe.archive_uploads
            """
        ).map { try $0.decode(String.self, at: 0) }
        return lock.withLock { outputs.joined(separator: "\n") } + stored.joined(separator: "\n")
    }

    /// True when no secret of the fixture appears anywhere it could have been logged.
    func secretsStayedSecret() throws -> Bool {
        let text = try everythingLogged()
        return !text.contains(Self.archiveKey) && !text.lowercased().contains(masterKeyHex)
    }
}

extension ArchiveFixture {
    /// The fixture's registry (as its config file holds it now) compiled against its database,
    /// for tests that drive planning and deletion through the Store themselves.
    func archiveJobs(chunk: Int = 5_000, maxRootsPerType: Int = 1_000_000) throws -> ArchiveJobs {
        let text = try String(contentsOfFile: configPath, encoding: .utf8)
        let registry = try Configuration.parse(text, source: configPath).registry
        return ArchiveJobs(
            registry: try RegistryCatalog.compile(registry, on: connection), maxRootsPerType: maxRootsPerType,
            planChunkRoots: chunk)
    }

    /// Account 1's open job `id` as the Store reads it.
    func openJob(_ id: String, _ jobs: ArchiveJobs) throws -> ArchiveJob? {
        try jobs.openJobs(account: "1", on: connection).first { $0.id.uuidString.lowercased() == id }
    }

    /// Gives account 1's blobs about 5 MB of incompressible contents: with `split_size: 1MiB`
    /// its archive has several parts.
    func fillBlobs() throws {
        try connection.execute(
            """
            UPDATE app.blobs b SET content = (SELECT decode(string_agg(md5(random()::text || g), ''), 'hex')
                                              FROM generate_series(1, 2500 + 0 * b.id) g)
            WHERE account_id = 1
            """)
    }
}

extension ArchiveFixture {
    /// Runs `body` off the pool on the example application with archiving on for account 1
    /// and a `file://` site.
    static func withArchivingAccount(_ body: @escaping @Sendable (ArchiveFixture) throws -> Void) async throws {
        try await withMigratedDatabase { database in
            try await offThePool {
                let fixture = try ArchiveFixture(database: database)
                try fixture.addFileSite()
                try fixture.enableArchiving()
                try body(fixture)
            }
        }
    }
}

/// The size of a file, or nil when it does not exist.
func fileSize(_ path: String) -> Int64? {
    (try? FileManager.default.attributesOfItem(atPath: path))?[.size].flatMap { ($0 as? NSNumber)?.int64Value }
}

/// The SHA-256 of a file, lower-case hex, by `sha256sum`; nil when it cannot be read.
func sha256(of path: String) throws -> String? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    process.arguments = [path]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { return nil }
    return String(decoding: data, as: UTF8.self).split(separator: " ").first.map(String.init)
}
