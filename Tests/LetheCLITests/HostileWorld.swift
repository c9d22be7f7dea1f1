import Foundation
import Postgres
import TestSupport

/// The one database the hostile-input suite shares: the example application (two accounts,
/// account 1 archiving to a file:// site, one archive already written), its keys and config,
/// and the damaged or forged archive files the cases hand to `verify`, `extract` and `restore`.
/// Built once per test process; no case may change it, and each case proves that with `digest()`.
final class HostileWorld: @unchecked Sendable {
    /// Built on first use, shared by every case of the suite.
    static let shared: Result<HostileWorld, any Error> = Result { try HostileWorld() }

    static let archiveKey = "Archive-Key-2026"
    static let wrongArchiveKey = "Wrong-Key-2026"

    let database: TestDatabase
    let connection: Connection
    let directory: URL
    let masterKeyHex: String
    let wrongMasterKeyHex: String
    /// The working configuration's text and file.
    let configText: String
    let configPath: String
    /// The archive Lethe wrote for account 1, and its name.
    let archive: String
    let archiveName: String
    /// The SSH client's private key text (a secret that must never be printed).
    let privateKey: String
    /// Databases whose account column is `varchar(8)` and `integer`, for account ids that do not fit.
    let narrowVarchar: NarrowApplication
    let narrowInteger: NarrowApplication

    private init() throws {
        database = try TestDatabase.create()
        connection = try database.connect()
        try ExampleApplication.load(on: connection, tenants: 2, scale: 40)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "lethe-hostile-\(UUID().uuidString)")
        self.directory = directory
        func save(_ text: String, _ relative: String) throws {
            try text.write(toFile: directory.appendingPathComponent(relative).path, atomically: true, encoding: .utf8)
        }
        for sub in ["site", "spool", "keys", "files", "out"] {
            try FileManager.default.createDirectory(
                at: directory.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        func hex() -> String { (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined() }
        masterKeyHex = hex()
        wrongMasterKeyHex = hex()
        try save(masterKeyHex + "\n", "keys/master.key")
        try save(wrongMasterKeyHex + "\n", "keys/wrong-master.key")
        try save(Self.archiveKey + "\n", "keys/archive.key")
        try save(Self.wrongArchiveKey + "\n", "keys/wrong-archive.key")
        privateKey = try String(contentsOfFile: try TestSSHServer.fromEnvironment().keyPath, encoding: .utf8)
        configText = """
            database: { url: "\(database.url)" }
            coordinator: { tick_interval: 200ms }
            worker: { poll_interval: 200ms }
            archive:
              master_key_file: \(directory.path)/keys/master.key
              spool_directory: \(directory.path)/spool
            \(try ExampleApplication.registry())
            """
        configPath = try writeConfig(configText)

        try Self.lethe(["migrate"], config: configPath)
        try Self.lethe(["policy", "sync"], config: configPath)
        try Self.lethe(["account", "add", "1", "2"], config: configPath)
        try Self.lethe(
            ["account", "archive", "1", "--key-file", "\(directory.path)/keys/archive.key"], config: configPath)
        try Self.lethe(["account", "site", "add", "1", "file://\(directory.path)/site"], config: configPath)
        try Self.lethe(["account", "archive", "1", "--enable"], config: configPath)
        try connection.execute(
            "SELECT lethe.set_policy('1', t.name, t.min_interval) FROM lethe.entity_types t WHERE t.deletes")
        try Self.lethe(["archive", "run", "--account", "1"], config: configPath)
        try Self.lethe(["run", "--until-idle"], config: configPath)
        let site = directory.appendingPathComponent("site").path
        guard
            let name = try FileManager.default.contentsOfDirectory(atPath: site).first(where: { $0.hasSuffix(".zip") })
        else { throw TestSetupError("the setup's archive job wrote no file into \(site)") }
        archiveName = name
        archive = "\(site)/\(name)"
        narrowVarchar = try NarrowApplication(column: "varchar(8)")
        narrowInteger = try NarrowApplication(column: "integer")
        try makeHostileFiles()
    }

    /// Runs `lethe arguments… --config config` for the setup; it must exit 0.
    @discardableResult
    static func lethe(_ arguments: [String], config: String) throws -> ProcessResult {
        let result = try LetheProcess.run(arguments + ["--config", config])
        guard result.status == 0 else {
            throw TestSetupError(
                "setup: lethe \(arguments.joined(separator: " ")) exited \(result.status):\n\(result.output)")
        }
        return result
    }

    func path(_ relative: String) -> String { directory.appendingPathComponent(relative).path }

    func write(_ text: String, to relative: String) throws {
        try text.write(toFile: path(relative), atomically: true, encoding: .utf8)
    }

    /// Damaged copies of the archive, each under the archive's own name (in a directory of its
    /// own) so that Lethe takes the account and job from it; a forged unencrypted copy; and a
    /// ZIP whose entries climb out of any directory.
    private func makeHostileFiles() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: archive))
        func variant(_ kind: String, _ data: Data) throws {
            try FileManager.default.createDirectory(atPath: path("files/\(kind)"), withIntermediateDirectories: true)
            try data.write(to: URL(fileURLWithPath: path("files/\(kind)/\(archiveName)")))
        }
        try variant("truncated", bytes.prefix(bytes.count / 2))
        var tampered = bytes
        tampered[bytes.count / 3] ^= 0xFF
        try variant("tampered", tampered)
        try variant("empty", Data())
        try variant("garbage", Data("this is not a ZIP file\n".utf8))
        for kind in ["forged", "climbing"] {
            try FileManager.default.createDirectory(atPath: path("files/\(kind)"), withIntermediateDirectories: true)
        }
        // The forged file: the real archive's entries, re-zipped by Python without encryption.
        let plain = path("files/plain")
        try Self.lethe(
            ["archive", "extract", archive, "--key-file", path("keys/archive.key"), "--to", plain], config: configPath)
        try python(
            """
            import os, sys, zipfile
            src, out = sys.argv[1], sys.argv[2]
            names = sorted((os.path.relpath(os.path.join(r, f), src) for r, _, fs in os.walk(src) for f in fs),
                           key=lambda n: n == 'manifest.json')
            with zipfile.ZipFile(out, 'w') as z:
                for n in names: z.write(os.path.join(src, n), n)
            """, plain, path("files/forged/\(archiveName)"))
        try python(
            """
            import sys, zipfile
            with zipfile.ZipFile(sys.argv[1], 'w') as z:
                z.writestr('../escaped.txt', 'outside')
                z.writestr('records/../../escaped2.txt', 'outside')
                z.writestr('/tmp/absolute-escape.txt', 'outside')
                z.writestr('manifest.json', '{}')
            """, path("files/climbing/\(archiveName)"))
    }

    private func python(_ script: String, _ arguments: String...) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script] + arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestSetupError("python3 failed building a hostile ZIP") }
    }

    /// Every secret of the world: none may appear in what `lethe` prints.
    var secrets: [String] {
        [Self.archiveKey, Self.wrongArchiveKey, masterKeyHex, wrongMasterKeyHex, "S3cret-Passw0rd"]
            + privateKey.split(separator: "\n").filter { $0.count > 20 && !$0.contains("-----") }.map(String.init)
    }

    /// A digest of every row (with its `xmin`, so even a no-op UPDATE shows), every sequence
    /// and the catalog definition of every table, column, constraint, index, view, function
    /// and trigger in the application's schema and in schema `lethe`.
    func digest() throws -> [String: String] {
        try Self.digest(connection)
    }

    static func digest(_ connection: Connection) throws -> [String: String] {
        let relations = try connection.query(
            """
            SELECT format('%I.%I', n.nspname, c.relname), c.relkind::text FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname IN ('lethe', 'app', 'shop') AND c.relkind IN ('r', 'p', 'S')
            ORDER BY 1
            """
        ).map { try $0.decode((String, String).self) }
        var digest: [String: String] = [:]
        for (name, kind) in relations {
            digest[name] =
                kind == "S"
                ? try connection.scalar("SELECT last_value::text || ' ' || is_called::text FROM \(name)")
                : try connection.scalar(
                    """
                    SELECT count(*)::text || ' ' || coalesce(md5(string_agg(t.xmin::text || ' ' || t::text, E'\\n'
                        ORDER BY t::text COLLATE "C", t.xmin::text)), '-') FROM \(name) t
                    """)
        }
        digest["(catalog)"] = try connection.scalar(
            """
            SELECT md5(string_agg(d, E'\\n' ORDER BY d COLLATE "C")) FROM (
              SELECT format('%s.%s %s %s %s %s', c.oid::regclass, a.attname, format_type(a.atttypid, a.atttypmod),
                            a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid), c.relkind) AS d
              FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace
              LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
              WHERE n.nspname IN ('lethe', 'app', 'shop') AND a.attnum > 0 AND NOT a.attisdropped
              UNION ALL SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
              FROM pg_constraint WHERE connamespace::regnamespace::text IN ('lethe', 'app', 'shop')
              UNION ALL SELECT pg_get_indexdef(indexrelid) FROM pg_index
              WHERE indrelid::regclass::text ~ '^(lethe|app|shop)\\.'
              UNION ALL SELECT p.oid::regprocedure || ' ' || md5(p.prosrc) || ' ' || array_to_string(p.proacl, ',')
              FROM pg_proc p WHERE p.pronamespace::regnamespace::text IN ('lethe', 'app', 'shop')
              UNION ALL SELECT tgrelid::regclass || ' ' || pg_get_triggerdef(oid) FROM pg_trigger
              WHERE NOT tgisinternal AND tgrelid::regclass::text ~ '^(lethe|app|shop)\\.'
              UNION ALL SELECT format('%I.%I', schemaname, viewname) || ' ' || md5(definition) FROM pg_views
              WHERE schemaname IN ('lethe', 'app', 'shop')
              UNION ALL SELECT 'relation ' || c.oid::regclass || ' ' || coalesce(array_to_string(c.relacl, ','), '')
              FROM pg_class c WHERE c.relnamespace::regnamespace::text IN ('lethe', 'app', 'shop')
            ) defs
            """)
        return digest
    }
}

/// A small application whose account column is of a narrow type (`varchar(8)`, `integer`),
/// migrated and synced in a database of its own, for account ids that cannot fit it.
final class NarrowApplication: @unchecked Sendable {
    let database: TestDatabase
    let connection: Connection
    let configPath: String

    init(column: String) throws {
        database = try TestDatabase.create()
        connection = try database.connect()
        try connection.executeScript(
            """
            CREATE SCHEMA shop;
            CREATE TABLE shop.orders (id bigserial PRIMARY KEY, account_id \(column) NOT NULL,
                                      placed_at timestamptz NOT NULL, note text);
            CREATE INDEX ON shop.orders (account_id, placed_at);
            INSERT INTO shop.orders (account_id, placed_at, note)
            SELECT (g % 3 + 1)::text::\(column), now() - g * interval '1 day', 'order ' || g FROM generate_series(1, 30) g;
            """)
        configPath = try writeConfig(
            """
            database: { url: "\(database.url)" }
            entity_types:
              orders:
                table: shop.orders
                key: id
                account: account_id
                clock: placed_at
                interval: { default: 1y, min: 1d, max: 3y }
                batch_size: 100
            """)
        try HostileWorld.lethe(["migrate"], config: configPath)
        try HostileWorld.lethe(["policy", "sync"], config: configPath)
        try HostileWorld.lethe(["account", "add", "1"], config: configPath)
    }
}
