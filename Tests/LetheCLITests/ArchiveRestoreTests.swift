import ArchiveFormat
import Foundation
import Postgres
import TestSupport
import Testing

@testable import LetheCLI

/// `lethe archive verify | extract | restore` against real archives of the example
/// application (examples/contact-centre), made and uploaded by a real `lethe run`.
@Suite struct ArchiveRestoreTests {
    static let archiveKey = "Archive-Key-2026"
    /// Every table of the example application that holds account rows.
    static let tables = [
        "blobs", "device_infos", "persons", "person_presences", "conversations", "messages", "message_attachments",
        "audit_log", "webhook_calls", "staff", "external_contacts", "enquiries", "article_versions",
    ]

    /// A database with the example application, account 1 archived to a file:// site.
    struct Archived {
        var connection: Connection
        var directory: String
        var config: String
        var keyFile: String
        /// The archive files at the site.
        var files: [String]

        func lethe(_ arguments: [String]) throws -> ProcessResult {
            try LetheProcess.run(arguments + ["--config", config])
        }

        /// A file in the test's directory whose first line is `text`.
        func secretFile(_ name: String, _ text: String) throws -> String {
            let path = "\(directory)/\(name)"
            try (text + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }

        /// Per table, the number of an account's rows and an md5 over them in key order (blob
        /// contents included).
        func checksums(account: Int64 = 1) throws -> [String: String] {
            var sums: [String: String] = [:]
            for table in ArchiveRestoreTests.tables {
                sums[table] = try connection.scalar(
                    """
                    SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, ',' ORDER BY id)), '-')
                    FROM app.\(table) t WHERE account_id = $1
                    """, [account])
            }
            return sums
        }
    }

    /// Loads the example, archives account 1 (uploaded, not deleted) and runs `body`.
    func withArchive(_ body: (Archived) async throws -> Void) async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try ExampleApplication.load(on: connection, tenants: 2, scale: 300)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "lethe-restore-\(UUID().uuidString)"
            ).path
            try FileManager.default.createDirectory(
                atPath: "\(directory)/site", withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let masterKey = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
            try masterKey.write(toFile: "\(directory)/master.key", atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: "\(directory)/master.key")
            let config = try ExampleApplication.configuration(
                url: database.url,
                settings:
                    "archive: { master_key_file: \"\(directory)/master.key\", spool_directory: \"\(directory)/spool\" }"
            )
            defer { try? FileManager.default.removeItem(atPath: config) }
            var archived = Archived(
                connection: connection, directory: directory, config: config, keyFile: "", files: [])
            archived.keyFile = try archived.secretFile("archive.key", Self.archiveKey)
            func expectSuccess(_ arguments: [String]) throws {
                let result = try archived.lethe(arguments)
                try #require(result.status == 0, "lethe \(arguments.joined(separator: " ")): \(result.output)")
            }
            try expectSuccess(["policy", "sync"])
            try expectSuccess(["account", "add", "1", "2"])
            try connection.execute(
                """
                SELECT lethe.set_policy(a::text, t.name, t.min_interval)
                FROM generate_series(1, 2) a, lethe.entity_types t WHERE t.deletes
                """)
            try expectSuccess(["account", "site", "add", "1", "file://\(directory)/site"])
            try expectSuccess(["account", "archive", "1", "--key-file", archived.keyFile, "--enable"])
            try expectSuccess(["archive", "run", "--account", "1"])
            try expectSuccess(["run", "--until-idle"])
            let statuses: [String] = try connection.query(
                "SELECT status FROM lethe.backup_log WHERE account_id = '1'"
            ).map { try $0.decode(at: 0) }
            try #require(!statuses.isEmpty && statuses.allSatisfy { $0 == "uploaded" }, "\(statuses)")
            let names = try FileManager.default.contentsOfDirectory(atPath: "\(directory)/site")
            archived.files = names.filter { $0.hasSuffix(".zip") }.sorted().map { "\(directory)/site/\($0)" }
            try #require(!archived.files.isEmpty, "no archive at the site: \(names)")
            try await body(archived)
        }
    }

    @Test func restoreBringsBackWhatWasDeletedAndRefusesTwice() async throws {
        try await withArchive { archive in
            let before = try archive.checksums()
            let id: Int64 = try archive.connection.scalar("SELECT min(id) FROM lethe.backup_log WHERE account_id = '1'")
            #expect(try archive.lethe(["archive", "approve", "\(id)"]).status == 0)
            let run = try archive.lethe(["run", "--until-idle"])
            #expect(run.status == 0, "\(run.output)")
            let status: String = try archive.connection.scalar(
                "SELECT status FROM lethe.backup_log WHERE id = $1", [id])
            #expect(status == "deleted")
            let deleted = try archive.checksums()
            for table in ["conversations", "messages", "message_attachments", "blobs", "audit_log", "webhook_calls"] {
                #expect(deleted[table] != before[table], "\(table) lost no rows")
            }

            let restore = try archive.lethe(["archive", "restore"] + archive.files)
            #expect(restore.status == 0, "\(restore.output)")
            #expect(restore.stdout.contains("restored job"))
            #expect(restore.stdout.contains("app.conversations"))
            #expect(restore.stdout.contains("skipped: a keep-only type"))
            #expect(try archive.checksums() == before)

            let again = try archive.lethe(["archive", "restore", "--key-file", archive.keyFile] + archive.files)
            #expect(again.status == 1, "\(again.output)")
            #expect(again.stderr.contains("restore refused"), "\(again.stderr)")
            #expect(again.stderr.contains("app.conversations (conversations):"), "\(again.stderr)")
            #expect(again.stderr.contains("already (key "), "\(again.stderr)")
            #expect(try archive.checksums() == before)
        }
    }

    /// A tenant holding only its own archive key (account 1's) builds a file named and
    /// manifested as account 2's, encrypted with that key. Restored with `--key-file` of that
    /// key, it is refused before anything is written: Lethe never wrote that file for account
    /// 2 (its SHA-256 is not in the backup log). The genuine archive, restored with the right
    /// key file, still restores.
    @Test func aKeyFileRestoresOnlyFilesLetheWroteForTheAccount() async throws {
        try await withArchive { archive in
            let victim = try archive.checksums(account: 2)
            let crafted = try Self.craft(account: "2", id: 900001, key: Self.archiveKey, in: archive.directory)
            let attack = try archive.lethe(["archive", "restore", "--key-file", archive.keyFile, crafted])
            #expect(attack.status == 2, "\(attack.output)")
            #expect(attack.stderr.contains(crafted) && attack.stderr.contains("account 2"), "\(attack.stderr)")
            #expect(attack.stderr.contains("backup log"), "\(attack.stderr)")
            #expect(!attack.output.contains(Self.archiveKey))
            #expect(try archive.checksums(account: 2) == victim)
            let planted: Int = try archive.connection.scalar(
                "SELECT count(*)::bigint FROM app.conversations WHERE id = 900001")
            #expect(planted == 0)
            // The same file for the tenant's own account is not one Lethe wrote either.
            let own = try Self.craft(account: "1", id: 900002, key: Self.archiveKey, in: archive.directory)
            let ownAttack = try archive.lethe(["archive", "restore", "--key-file", archive.keyFile, own])
            #expect(ownAttack.status == 2, "\(ownAttack.output)")
            let ownPlanted: Int = try archive.connection.scalar(
                "SELECT count(*)::bigint FROM app.conversations WHERE id = 900002")
            #expect(ownPlanted == 0)

            let before = try archive.checksums()
            let id: Int64 = try archive.connection.scalar("SELECT min(id) FROM lethe.backup_log WHERE account_id = '1'")
            #expect(try archive.lethe(["archive", "approve", "\(id)"]).status == 0)
            let run = try archive.lethe(["run", "--until-idle"])
            #expect(run.status == 0, "\(run.output)")
            #expect(try archive.checksums() != before)
            let restore = try archive.lethe(["archive", "restore", "--key-file", archive.keyFile] + archive.files)
            #expect(restore.status == 0, "\(restore.output)")
            #expect(try archive.checksums() == before)
            #expect(try archive.checksums(account: 2) == victim)
        }
    }

    /// An archive written with `ArchivePartWriter` (as the packer does): one conversation of
    /// `account` with id `id`, named and manifested as that account's, encrypted with `key`.
    static func craft(account: String, id: Int, key: String, in directory: String) throws -> String {
        let target = "\(directory)/crafted-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        let table = "app.conversations"
        var writer = ArchivePartWriter(
            directory: target,
            job: .init(
                id: UUID(), account: account, stamp: "20260101000000", created: Date(),
                cutoffs: [:], counts: ["conversations": [table: 1]]),
            passphrase: key, compressionLevel: 6, splitSize: 1 << 30)
        let record = """
            {"id":\(id),"account_id":\(account),"channel":"chat","started_at":"2020-01-01T00:00:00Z",\
            "ended_at":"2020-01-02T00:00:00Z"}

            """
        try writer.begin(ArchiveLayout.rowsEntry(type: "conversations", index: 0, table: table))
        try writer.write(Array(record.utf8), records: 1)
        let files = try writer.finish()
        return "\(target)/\(files[0].name)"
    }

    @Test func verifyChecksEveryEntryAndTheKey() async throws {
        try await withArchive { archive in
            let stored = try archive.lethe(["archive", "verify"] + archive.files)
            #expect(stored.status == 0, "\(stored.output)")
            #expect(stored.stdout.contains(": OK, account 1, job "), "\(stored.stdout)")
            #expect(!stored.output.contains(Self.archiveKey))

            let keyFile = try LetheProcess.run(["archive", "verify", "--key-file", archive.keyFile] + archive.files)
            #expect(keyFile.status == 0, "\(keyFile.output)")

            let wrongKey = try archive.secretFile("wrong.key", "Not-The-Key-2026")
            let wrong = try LetheProcess.run(["archive", "verify", "--key-file", wrongKey] + archive.files)
            #expect(wrong.status == 1, "\(wrong.output)")
            #expect(wrong.stderr.contains("does not open the archive: the key is wrong"), "\(wrong.stderr)")
            #expect(!wrong.output.contains("Not-The-Key-2026"))

            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: archive.files[0])))
            bytes[bytes.count / 2] ^= 0x40
            let damaged = "\(archive.directory)/" + URL(fileURLWithPath: archive.files[0]).lastPathComponent
            try Data(bytes).write(to: URL(fileURLWithPath: damaged))
            let flipped = try LetheProcess.run(["archive", "verify", "--key-file", archive.keyFile, damaged])
            #expect(flipped.status == 1, "\(flipped.output)")
            #expect(flipped.stderr.contains(damaged), "\(flipped.stderr)")

            let noFile = try LetheProcess.run(["archive", "verify", "--key-file", archive.keyFile, "/nonexistent.zip"])
            #expect(noFile.status == 2 && noFile.stderr.contains("cannot read the archive file /nonexistent.zip"))
            let noKey = try LetheProcess.run(["archive", "verify"] + archive.files)
            #expect(noKey.status == 2 && noKey.stderr.contains("--key-file"), "\(noKey.output)")
        }
    }

    @Test func extractWritesTheEntriesAsTheManifestLists() async throws {
        try await withArchive { archive in
            let target = "\(archive.directory)/out"
            let extract = try archive.lethe(["archive", "extract", "--to", target] + archive.files)
            #expect(extract.status == 0, "\(extract.output)")
            let manifestData = try Data(contentsOf: URL(fileURLWithPath: "\(target)/manifest.json"))
            let manifest = try JSONDecoder().decode(ArchiveManifest.self, from: manifestData)
            #expect(manifest.account == "1" && manifest.part == 1)
            #expect(manifest.entries.contains { $0.name.hasPrefix("records/conversations/0-") })
            #expect(manifest.entries.contains { $0.name.hasPrefix("blobs/blobs/") })
            for entry in manifest.entries {
                let data = try Data(contentsOf: URL(fileURLWithPath: "\(target)/\(entry.name)"))
                #expect(Int64(data.count) == entry.size, "\(entry.name)")
                if entry.name.hasPrefix("records/") {
                    #expect(data.filter { $0 == 0x0A }.count == entry.records, "\(entry.name)")
                }
            }

            // Never over existing files; a failed run leaves what was there.
            let again = try archive.lethe(["archive", "extract", "--to", target] + archive.files)
            #expect(again.status == 1 && again.stderr.contains("refusing to overwrite"), "\(again.output)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: "\(target)/manifest.json")) == manifestData)
            let onFile = try archive.lethe(["archive", "extract", "--to", archive.config] + archive.files)
            #expect(onFile.status == 2 && onFile.stderr.contains("is not a directory"), "\(onFile.output)")

            // Other tools open the same file with the key (a test may hand it over; Lethe never does).
            let listing = try ExternalTool.run(
                "/usr/bin/bsdtar", ["-tf", archive.files[0], "--passphrase", Self.archiveKey])
            #expect(listing.status == 0 && listing.output.contains("manifest.json"), "\(listing.output)")
        }
    }
}

/// Another program (not lethe), run to completion with stdin from /dev/null: its exit
/// status and its output (both streams).
enum ExternalTool {
    /// `directory` and `environment` (the whole environment) default to this process's.
    static func run(
        _ executable: String, _ arguments: [String], directory: String? = nil, environment: [String: String]? = nil
    ) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        if let environment { process.environment = environment }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
