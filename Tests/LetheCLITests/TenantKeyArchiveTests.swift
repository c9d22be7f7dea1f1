import Foundation
import Postgres
import TestSupport
import Testing

/// Archiving on a schema whose ids restart per tenant, with a composite key, a keyless join
/// table and blobs whose keys restart per tenant too: the archive holds only the account's
/// rows, and exactly those go after approval (orphaned blobs of the account included).
@Suite struct TenantKeyArchiveTests {
    static let schema = """
        CREATE SCHEMA app;
        CREATE TABLE app.blobs (account_id bigint, id bigint, content bytea, PRIMARY KEY (account_id, id));
        CREATE TABLE app.conv (account_id bigint, id bigint, closed_at timestamptz, rec bigint,
                               PRIMARY KEY (account_id, id));
        CREATE TABLE app.msg (account_id bigint, conv_id bigint, id bigint, body text, PRIMARY KEY (account_id, id));
        CREATE TABLE app.members (account_id bigint, conv_id bigint, user_id bigint,
                                  PRIMARY KEY (account_id, conv_id, user_id));
        INSERT INTO app.blobs SELECT a, b, convert_to('blob ' || a || '/' || b, 'UTF8')
            FROM generate_series(1, 2) a, unnest(ARRAY[10, 20, 30]) b;
        INSERT INTO app.conv SELECT a, 1, now() - interval '400 days', 10 FROM generate_series(1, 2) a;
        INSERT INTO app.conv SELECT a, 2, now(), 20 FROM generate_series(1, 2) a;
        INSERT INTO app.msg SELECT a, c, c * 10, 'message of ' || a FROM generate_series(1, 2) a, generate_series(1, 2) c;
        INSERT INTO app.members SELECT a, 1, u FROM generate_series(1, 2) a, generate_series(100, 101) u;
        """

    static func rows(_ connection: Connection) throws -> Set<String> {
        Set(
            try connection.query(
                """
                SELECT 'blobs ' || account_id || ' ' || id FROM app.blobs
                UNION ALL SELECT 'conv ' || account_id || ' ' || id FROM app.conv
                UNION ALL SELECT 'msg ' || account_id || ' ' || id FROM app.msg
                UNION ALL SELECT 'members ' || account_id || ' ' || conv_id || ' ' || user_id FROM app.members
                """
            ).map { try $0.decode(String.self, at: 0) })
    }

    @Test func theArchiveHoldsOnlyTheAccountsRowsAndExactlyThoseGo() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(Self.schema)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "lethe-tk-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: directory) }
            let site = directory.appendingPathComponent("site").path
            try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: true)
            let master = directory.appendingPathComponent("master.key").path
            try ((0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined() + "\n")
                .write(toFile: master, atomically: true, encoding: .utf8)
            chmod(master, 0o600)
            let keyFile = directory.appendingPathComponent("archive.key").path
            try "Archive-Key-2026\n".write(toFile: keyFile, atomically: true, encoding: .utf8)
            let config = try writeConfig(
                """
                database: { url: "\(database.url)" }
                coordinator: { tick_interval: 200ms }
                worker: { poll_interval: 200ms }
                archive: { master_key_file: \(master), spool_directory: \(directory.appendingPathComponent("spool").path) }
                blob_stores:
                  blobs: { table: app.blobs, account: account_id, content: content, grace: 1h }
                entity_types:
                  conversations:
                    table: app.conv
                    key: [account_id, id]
                    account: account_id
                    clock: closed_at
                    interval: { default: 30d, min: 1d, max: 5y }
                    blobs: [ { column: rec } ]
                    children:
                      - { table: app.msg, key: id, account: account_id, parent: [account_id, conv_id] }
                      - { table: app.members, parent: [account_id, conv_id] }
                """)
            defer { try? FileManager.default.removeItem(atPath: config) }
            func lethe(_ arguments: [String]) throws -> ProcessResult {
                let result = try LetheProcess.run(arguments + ["--config", config])
                #expect(result.status == 0, "lethe \(arguments.joined(separator: " ")): \(result.output)")
                return result
            }
            _ = try lethe(["policy", "sync"])
            _ = try lethe(["account", "add", "1", "2"])
            // Account 2 has the very same ids and is just as expired, but under a hold.
            try connection.execute("SELECT lethe.place_hold('2', NULL, 'litigation', NULL)")
            _ = try lethe(["account", "site", "add", "1", "file://\(site)"])
            _ = try lethe(["account", "archive", "1", "--key-file", keyFile, "--enable"])
            // Blob 30 of each account is an orphan seen a day ago (past the 1h grace).
            try connection.execute(
                "INSERT INTO lethe.orphan_blobs (store, account_id, blob_key, first_seen_at) VALUES ('blobs', '1', '30', now() - interval '1 day'), ('blobs', '2', '30', now() - interval '1 day')"
            )
            let before = try Self.rows(connection)
            let job = try lethe(["archive", "run", "--account", "1"]).stdout.trimmingCharacters(
                in: .whitespacesAndNewlines)
            _ = try lethe(["run", "--until-idle"])
            let file: String = try connection.scalar(
                "SELECT file_name FROM lethe.backup_log WHERE job_id = $1::uuid", [job])
            #expect(try Self.rows(connection) == before, "nothing goes before approval")

            // Every record in the archive is account 1's, and every row of its expired tree is there.
            let out = directory.appendingPathComponent("out").path
            _ = try lethe(["archive", "extract", "\(site)/\(file)", "--to", out, "--key-file", keyFile])
            var records: [String] = []
            for case let path as String in FileManager.default.enumerator(atPath: out)! where path.hasSuffix(".jsonl") {
                let text = try String(contentsOfFile: "\(out)/\(path)", encoding: .utf8)
                records += text.split(separator: "\n").map { "\(path.split(separator: "/").last!) \($0)" }
            }
            #expect(records.count == 1 + 1 + 2 + 2, "\(records)")  // conv, msg, two members, blobs 10 and 30
            #expect(records.allSatisfy { $0.contains("\"account_id\":1") }, "\(records)")
            let blobFiles = try FileManager.default.contentsOfDirectory(atPath: "\(out)/blobs/blobs").sorted()
            #expect(blobFiles == ["10", "30"])
            #expect(try String(contentsOfFile: "\(out)/blobs/blobs/10", encoding: .utf8) == "blob 1/10")

            let id: Int64 = try connection.scalar("SELECT id FROM lethe.backup_log WHERE job_id = $1::uuid", [job])
            _ = try lethe(["archive", "approve", "\(id)"])
            _ = try lethe(["run", "--until-idle"])
            #expect(
                try connection.scalar("SELECT state FROM lethe.archive_jobs WHERE job_id = $1::uuid", [job])
                    == "deleted")
            #expect(
                before.subtracting(try Self.rows(connection))
                    == ["conv 1 1", "msg 1 10", "members 1 1 100", "members 1 1 101", "blobs 1 10", "blobs 1 30"])
        }
    }
}
