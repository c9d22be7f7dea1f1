import Foundation
import Postgres
import TestSupport
import Testing

/// A job of several parts whose part 2 no site holds, while a site holds part 1, and whose
/// packing worker's spool is gone: another worker packs it again as generation 2 under new
/// names, uploads that to every site, removes the superseded files, and deletes only rows the
/// new generation holds.
@Suite(.serialized) struct ArchiveRepackTests {
    @Test func aPartLostEverywhereIsPackedAgainAndReplacedOnEverySite() async throws {
        try await repackAfterALostPart(changingARow: false)
    }

    /// A root edited between the two packs loses its hash in the second packing transaction:
    /// it is neither in generation 2 nor deleted, though generation 1 held it as planned.
    @Test func aRowChangedBetweenTheTwoPacksIsSpared() async throws {
        try await repackAfterALostPart(changingARow: true)
    }

    private func repackAfterALostPart(changingARow: Bool) async throws {
        try await withMigratedDatabase { database in
            // Parts close at a 1 MiB block once past split_size: about 5 MB of incompressible
            // blob contents make several.
            let fixture = try ArchiveFixture(database: database, extra: "  split_size: 1MiB")
            try fixture.connection.execute(
                """
                UPDATE app.blobs b SET content = (SELECT decode(string_agg(md5(random()::text || g), ''), 'hex')
                                                  FROM generate_series(1, 2500 + 0 * b.id) g)
                WHERE account_id = 1
                """)
            try fixture.addFileSite()
            try fixture.enableArchiving()
            try fixture.snapshot()
            let job = try fixture.startJob()
            let stamp: String = try fixture.connection.scalar(
                """
                SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS') FROM lethe.archive_jobs
                WHERE job_id = $1::uuid
                """, [job])
            // Part 2's upload fails on the only site: something else holds its name there.
            let base = "backup_1_\(job)_\(stamp)"
            let squatter = "\(fixture.siteDirectory)/\(base)_part2.zip"
            try Data("not an archive".utf8).write(to: URL(fileURLWithPath: squatter))
            _ = try fixture.lethe(["run", "--until-idle", "--log-level", "debug"])

            // What worker A leaves: part 1 on the site and recorded, part 2 failed, spool X.
            let first = try fixture.files(job: job)
            #expect(first.count >= 2, "split at 1 MiB: \(first)\n\(fixture.diagnostics())")
            #expect(first.map(\.status).prefix(2) == ["uploading", "upload_failed"], "\(first)")
            let part1 = try #require(first.first)
            let part2 = try #require(first.dropFirst().first)
            #expect(part1.name == "\(base).zip")
            #expect(fileSize("\(fixture.siteDirectory)/\(part1.name)") == part1.size)
            let held: Int = try fixture.connection.scalar(
                "SELECT count(*)::int FROM lethe.archive_uploads WHERE file_id = $1 AND status = 'uploaded'", [part1.id]
            )
            #expect(held == 1)
            #expect(try fixture.gone(account: 1).isEmpty)
            let spoolX = fixture.directory.appendingPathComponent("spool").path
            try FileManager.default.removeItem(atPath: spoolX)  // the pod and its emptyDir are gone

            // A second site arrives meanwhile; the operator retries the failed files now.
            let sftpRoot = try TestSSHServer.fromEnvironment().root
            try fixture.addSFTPSite()
            defer {
                for name in (try? FileManager.default.contentsOfDirectory(atPath: sftpRoot)) ?? []
                where name.contains(job) {
                    try? FileManager.default.removeItem(atPath: "\(sftpRoot)/\(name)")
                }
            }
            try fixture.expectSuccess(["archive", "retry", "\(part2.id)"])
            try fixture.preApprove(job)
            var edited: Int64?
            if changingARow {
                edited = try fixture.manifestIDs(job: job, type: "conversations", index: 0).min()
                try fixture.connection.execute(
                    "UPDATE app.conversations SET channel = channel || '-edited' WHERE id = $1",
                    [try #require(edited)])
            }

            // Worker B, another spool directory.
            let spoolY = fixture.directory.appendingPathComponent("spool-y").path
            let configB = try writeConfig(
                try String(contentsOfFile: fixture.configPath, encoding: .utf8)
                    .replacingOccurrences(of: "spool_directory: \(spoolX)", with: "spool_directory: \(spoolY)"))
            defer { try? FileManager.default.removeItem(atPath: configB) }
            let finish = try LetheProcess.run(["run", "--until-idle", "--log-level", "debug", "--config", configB])
            fixture.keep(finish.output)
            #expect(finish.status == 0, "\(finish.output.suffix(3000))")
            #expect(finish.output.contains("packing again as generation 2"), "\(finish.output.suffix(3000))")
            #expect(try fixture.jobState(job) == "deleted", "\(fixture.diagnostics())")

            // The backup log: generation 1 superseded and removed, generation 2 deleted.
            let rows = try fixture.connection.query(
                """
                SELECT f.generation, f.part, f.file_name, f.status, f.removed_at IS NOT NULL, f.total_size, f.sha256,
                       cardinality(b.sites)
                FROM lethe.archive_files f JOIN lethe.backup_log b ON b.id = f.id
                WHERE f.job_id = $1::uuid ORDER BY f.generation, f.part
                """, [job]
            ).map { try $0.decode((Int, Int, String, String, Bool, Int64?, String?, Int).self) }
            let old = rows.filter { $0.0 == 1 }
            let new = rows.filter { $0.0 == 2 }
            #expect(old.count == first.count && old.allSatisfy { $0.3 == "superseded" && $0.4 && $0.7 == 0 }, "\(rows)")
            #expect(!new.isEmpty && new.allSatisfy { $0.3 == "deleted" && !$0.4 }, "\(rows)")
            #expect(
                new.first?.2 == "\(base)_g2.zip" && new.dropFirst().allSatisfy { $0.2.hasPrefix("\(base)_g2_part") })
            let recorded: Int64 = try fixture.connection.scalar(
                "SELECT min(archive_id) FROM lethe.deletion_records WHERE archive_id IS NOT NULL AND account_id = '1'")
            let newFirst: Int64 = try fixture.connection.scalar(
                "SELECT id FROM lethe.archive_files WHERE job_id = $1::uuid AND generation = 2 AND part = 1", [job])
            #expect(recorded == newFirst, "deletions name the new generation's first file")

            // The sites: every new file at its size and SHA-256; no superseded copy of ours
            // (the squatter, never ours, is left as it was).
            for root in [fixture.siteDirectory, sftpRoot] {
                for file in new {
                    #expect(fileSize("\(root)/\(file.2)") == file.5, "\(root)/\(file.2)")
                    #expect(try sha256(of: "\(root)/\(file.2)") == file.6, "\(root)/\(file.2)")
                }
                #expect(fileSize("\(root)/\(part1.name)") == nil, "\(root)/\(part1.name) was superseded")
            }
            #expect(try String(contentsOfFile: squatter, encoding: .utf8) == "not an archive")
            #expect(finish.output.contains("removed"), "\(finish.output.suffix(3000))")

            // Every deleted row is in the new generation's files, read back with the key.
            let target = fixture.directory.appendingPathComponent("extracted").path
            let paths = new.map { "\(sftpRoot)/\($0.2)" }
            try fixture.expectSuccess(["archive", "verify", "--key-file", fixture.keyFile] + paths)
            try fixture.expectSuccess(["archive", "extract", "--key-file", fixture.keyFile, "--to", target] + paths)
            let archived = try archivedIDs(in: "\(target)/records")
            let gone = try fixture.gone(account: 1)
            #expect(!(gone["app.conversations"] ?? []).isEmpty)
            for (table, ids) in gone {
                // Records entries are labelled as configured (app.messages); blob rows by store (blobs).
                let held = archived[table] ?? archived[String(table.dropFirst("app.".count))] ?? []
                #expect(Set(ids).isSubset(of: held), "\(table): deleted rows not in generation 2")
            }
            if let edited {
                #expect(!(gone["app.conversations"] ?? []).contains(edited), "the edited root was deleted")
                #expect(!(archived["app.conversations"] ?? []).contains(edited), "generation 2 holds the edited root")
                #expect(!(archived["app.conversations"] ?? []).isEmpty)
                let hash: String? = try fixture.connection.scalar(
                    """
                    SELECT row_hash FROM lethe.archive_manifest
                    WHERE job_id = $1::uuid AND entity_type = 'conversations' AND table_index = 0 AND row_key = $2
                    """, [job, "\(edited)"])
                #expect(hash == nil)
            } else {
                #expect(
                    Set(gone["app.conversations"] ?? [])
                        == (try fixture.manifestIDs(job: job, type: "conversations", index: 0)))
            }
            #expect(try fixture.secretsStayedSecret())
        }
    }
}

/// The `id` of every JSON line of every records entry under `directory`, per table label
/// (`N-LABEL.jsonl` as `LABEL`, `_blobs/STORE.jsonl` as `STORE`).
private func archivedIDs(in directory: String) throws -> [String: Set<Int64>] {
    var out: [String: Set<Int64>] = [:]
    for case let path as String in FileManager.default.enumerator(atPath: directory)! where path.hasSuffix(".jsonl") {
        var label = String(URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent)
        if let dash = label.firstIndex(of: "-"), label[..<dash].allSatisfy(\.isNumber) {
            label = String(label[label.index(after: dash)...])
        }
        for line in try String(contentsOfFile: "\(directory)/\(path)", encoding: .utf8).split(separator: "\n") {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            if let id = (object?["id"] as? NSNumber)?.int64Value { out[label, default: []].insert(id) }
        }
    }
    return out
}
