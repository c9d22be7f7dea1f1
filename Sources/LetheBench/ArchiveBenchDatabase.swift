import BackupSites
import Foundation
import LetheCLI
import LetheConfiguration
import Postgres
import Store

/// The scratch database of `lethe bench archive`: Lethe's schema, the example application,
/// a master key, and tenants whose conversations have all expired, with archiving on and a
/// `file://` backup site each.
struct ArchiveBenchDatabase: Sendable {
    let name: String
    let conninfo: String
    let thread: ConnectionThread
    let registry: CompiledRegistry
    let masterKey: MasterKey
    /// The master key's file (mode 0600), for worker processes.
    let masterKeyPath: String
    /// A throwaway archive key of this run, for every tenant.
    let archiveKey: String

    /// The example's conversations with their messages, attachments and blobs; blob contents
    /// are archived as files.
    static let registryYAML = RetentionBench.registry(batchSize: 1000, content: "content")

    /// JSON per conversation (9 messages of two to four sentences, attachments, blob rows), measured.
    static let bytesPerConversation: Int64 = 2600
    /// Each recording of a memory tenant.
    static let recordingSize = 4 << 20

    /// Creates the database `name` on the configured server and builds it.
    static func create(
        name: String, context: CommandContext, example: URL, directory: String
    ) async throws -> ArchiveBenchDatabase {
        try await context.withDatabase(name: "lethe-bench-admin") {
            try $0.execute("CREATE DATABASE \(SQLIdentifier.quote(name))")
        }
        let conninfo = ConnectionString.withDatabase(context.conninfo, name)
        let thread = ConnectionThread(conninfo: conninfo, name: "lethe-bench-db")
        let files = try MigrationSet.resolve(flag: nil, configured: context.configuration.migrationsDirectory).files
        let schema = try String(contentsOf: example.appendingPathComponent("schema.sql"), encoding: .utf8)
        let seed = try String(contentsOf: example.appendingPathComponent("seed.sql"), encoding: .utf8)
        let parsed = try Configuration.parse(registryYAML, source: "bench")
        let registry = try await thread.run { connection in
            try Migrator(files: files).apply(connection)
            try connection.executeScript(schema)
            try connection.executeScript(seed)
            return try RegistryInForce.syncBenchmark(parsed, on: connection)
        }
        let masterKeyText = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        let masterKeyPath = directory + "/master.key"
        guard
            FileManager.default.createFile(
                atPath: masterKeyPath, contents: Data((masterKeyText + "\n").utf8),
                attributes: [.posixPermissions: 0o600])
        else { throw DemoFailure("cannot write \(masterKeyPath)") }
        let letters = Array("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
        return ArchiveBenchDatabase(
            name: name, conninfo: conninfo, thread: thread, registry: registry,
            masterKey: try MasterKey(text: masterKeyText, source: masterKeyPath), masterKeyPath: masterKeyPath,
            archiveKey: "Bench-" + String((0..<20).map { _ in letters.randomElement()! }) + "-7q")
    }

    /// Tenant `account`: about `bytes` of archived JSON in expired conversations (9 messages
    /// each, a tenth with an attachment, recordings on 30%), blob contents NULL (no files:
    /// this tenant measures records). Returns the rows inserted.
    func seedRecords(account: Int, bytes: Int64) async throws -> Int {
        let conversations = Int(max(bytes / Self.bytesPerConversation, 100))
        return try await thread.run { connection in
            let rows = try connection.query(
                "SELECT app.seed_tenant($1::bigint, $2::int, 9, interval '1 year', now() - interval '400 days', false)",
                [account, conversations])[0].decode(Int.self, at: 0)
            try connection.execute("UPDATE app.blobs SET content = NULL WHERE account_id = $1::bigint", [account])
            // Two to four sentences a message, drawn from a pool too large to repeat within
            // deflate's 32 KiB window: text that compresses like chat does (about 3:1), not
            // the seed's "message 7".
            try connection.execute(
                """
                WITH pool AS (SELECT array_agg(s) AS s FROM json_array_elements_text($2::json) AS p(s))
                UPDATE app.messages SET body = concat_ws(' ',
                    s[1 + floor(random() * cardinality(s))::int], s[1 + floor(random() * cardinality(s))::int],
                    CASE WHEN random() < 0.6 THEN s[1 + floor(random() * cardinality(s))::int] END,
                    CASE WHEN random() < 0.3 THEN s[1 + floor(random() * cardinality(s))::int] END)
                FROM pool WHERE account_id = $1::bigint
                """, [account, try Self.sentencePool()])
            try connection.execute("VACUUM ANALYZE")
            return rows
        }
    }

    /// A JSON array of 4096 random sentences of made-up words (one to three syllables each).
    static func sentencePool() throws -> String {
        let syllables = [
            "a", "ba", "be", "bi", "bo", "ca", "ce", "co", "da", "de", "di", "do", "en", "er", "fa", "fi", "ga", "ge",
            "ha", "he", "hi", "in", "ka", "ke", "la", "le", "li", "lo", "ma", "me", "mi", "mo", "na", "ne", "ni", "no",
            "on", "pa", "pe", "po", "ra", "re", "ri", "ro", "sa", "se", "si", "so", "ta", "te", "ti", "to", "un", "va",
            "ve", "vi", "wa", "we", "ya", "za",
        ]
        var generator = SystemRandomNumberGenerator()
        func word() -> String {
            (0...Int.random(in: 0...2, using: &generator)).map { _ in syllables.randomElement(using: &generator)! }
                .joined()
        }
        let sentences = (0..<4096).map { _ -> String in
            let words = (0..<Int.random(in: 5...14, using: &generator)).map { _ in word() }.joined(separator: " ")
            return words.prefix(1).uppercased() + words.dropFirst() + [".", ".", ".", "?", "!"].randomElement(
                using: &generator)!
        }
        let data = try JSONSerialization.data(withJSONObject: sentences)
        return String(decoding: data, as: UTF8.self)
    }

    /// Tenant `account`: expired conversations, each with a recording of `recordingSize`
    /// random (incompressible) bytes, `bytes` in all. Returns the recordings inserted.
    func seedRecordings(account: Int, bytes: Int64, progress: @escaping @Sendable (Int) -> Void) async throws -> Int {
        let count = Int((bytes + Int64(Self.recordingSize) - 1) / Int64(Self.recordingSize))
        let size = Self.recordingSize
        try await thread.run { connection in
            try connection.execute(
                "INSERT INTO app.accounts (id, name) VALUES ($1::bigint, 'Bench tenant ' || $1) ON CONFLICT DO NOTHING",
                [account])
            var generator = SystemRandomNumberGenerator()
            var words = [UInt64](repeating: 0, count: size / 8)
            for index in 0..<count {
                for word in words.indices { words[word] = generator.next() }
                let content = words.withUnsafeBytes { Data($0) }
                try connection.execute(
                    """
                    WITH b AS (
                        INSERT INTO app.blobs (account_id, kind, byte_size, content, created_at)
                        VALUES ($1::bigint, 'recording', $2, $3, now() - interval '400 days') RETURNING id
                    )
                    INSERT INTO app.conversations (account_id, channel, started_at, ended_at, recording_blob_id)
                    SELECT $1::bigint, 'voice', now() - interval '401 days', now() - interval '400 days', b.id FROM b
                    """, [account, size, content])
                if (index + 1) % 64 == 0 { progress(index + 1) }
            }
            try connection.execute("ANALYZE app.blobs")
            try connection.execute("ANALYZE app.conversations")
        }
        return count
    }

    /// Makes `account` a Lethe account whose conversations expire after a year, archived
    /// with this run's key to the backup site `url` (a `file://` directory is created; an
    /// `sftp://` site logs in with `credentials`' key files); no auto-delete.
    func enableArchiving(account: Int, site url: String, credentials: SiteCredentials = .init()) async throws {
        if url.hasPrefix("file://") {
            try FileManager.default.createDirectory(atPath: String(url.dropFirst(7)), withIntermediateDirectories: true)
        }
        let administration = ArchiveAdministration(masterKey: masterKey)
        let key = archiveKey
        try await thread.run { connection in
            try connection.execute("SELECT lethe.add_account($1)", ["\(account)"])
            try connection.execute("SELECT lethe.set_policy($1, 'conversations', '1 year')", ["\(account)"])
            _ = try administration.addSite(
                account: "\(account)", url: url, identityFile: credentials.identityFile, secret: nil,
                knownHostsFile: credentials.knownHostsFile, on: connection)
            var change = ArchiveSettingsChange()
            change.key = key
            change.enabled = true
            change.autoDelete = false
            _ = try administration.update(account: "\(account)", change, on: connection)
        }
    }

    /// Starts an archive job for `account` now and returns it, not yet planned.
    func startJob(account: Int) async throws -> ArchiveJob {
        let jobs = ArchiveJobs(registry: registry, maxRootsPerType: Int(Int32.max))
        return try await thread.run { connection in
            let id = try connection.query("SELECT lethe.start_archive_job($1)", ["\(account)"])[0].decode(
                UUID.self, at: 0)
            guard let job = try jobs.openJobs(account: "\(account)", on: connection).first(where: { $0.id == id })
            else {
                throw DemoFailure("archive job \(id) of account \(account) is not open")
            }
            return job
        }
    }

    func drop(context: CommandContext) async {
        await thread.shutdown()
        _ = try? await context.withDatabase(name: "lethe-bench-admin") { [name] in
            try $0.execute("DROP DATABASE IF EXISTS \(SQLIdentifier.quote(name)) WITH (FORCE)")
        }
    }
}
