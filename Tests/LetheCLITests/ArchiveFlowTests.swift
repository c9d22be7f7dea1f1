import Foundation
import Postgres
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Archive before delete, end to end through `lethe` processes against a real PostgreSQL
/// and a real sshd: nothing is deleted unless every backup site holds the archive, only
/// archived rows go, and a crash at any moment loses nothing.
@Suite(.serialized) struct ArchiveFlowTests {
    @Test func archivesToTwoSitesAndDeletesOnlyArchivedRowsOnApproval() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database)
            try fixture.addFileSite()
            try fixture.addSFTPSite()
            try fixture.enableArchiving()
            try fixture.snapshot()
            let otherAccount = try fixture.checksum(account: 2)
            let job = try fixture.startJob()
            try fixture.runUntilIdle()

            // Uploaded to both sites, same size and checksum as recorded; nothing deleted yet.
            let files = try fixture.files(job: job)
            #expect(files.count == 1 && files[0].status == "uploaded", "\(files)\n\(fixture.diagnostics())")
            let file = try #require(files.first)
            let sftpRoot = try TestSSHServer.fromEnvironment().root
            let copies = ["\(fixture.siteDirectory)/\(file.name)", "\(sftpRoot)/\(file.name)"]
            for copy in copies {
                #expect(fileSize(copy) == file.size, "\(copy)")
                let (_, sum) = try ExternalTool.run("/usr/bin/sha256sum", [copy])
                #expect(sum.hasPrefix(try #require(file.sha256)), "\(copy)")
            }
            #expect(try fixture.connection.scalar("SELECT cardinality(sites) FROM lethe.backup_log", as: Int.self) == 2)
            #expect(try fixture.gone(account: 1).isEmpty)

            // The key opens it in bsdtar and 7z; without it, or with another, it does not open.
            let key = ArchiveFixture.archiveKey
            let (listed, names) = try ExternalTool.run("/usr/bin/bsdtar", ["--passphrase", key, "-tf", copies[1]])
            #expect(listed == 0 && names.contains("manifest.json") && names.contains("records/conversations/"))
            let (extracted, manifest) = try ExternalTool.run(
                "/usr/bin/bsdtar", ["--passphrase", key, "-xOf", copies[1], "manifest.json"])
            #expect(extracted == 0 && manifest.contains("\"job\" : \"\(job)\"") && manifest.contains("sha256"))
            #expect(try ExternalTool.run("/usr/bin/7z", ["t", "-p\(key)", copies[0]]).0 == 0)
            #expect(try ExternalTool.run("/usr/bin/7z", ["t", "-pNot-The-Key-1", copies[0]]).0 != 0)
            #expect(try ExternalTool.run("/usr/bin/bsdtar", ["-xOf", copies[0], "manifest.json"]).0 != 0)

            // A message added to an archived conversation after packing: that conversation stays.
            let touched = try #require(fixture.manifestIDs(job: job, type: "conversations", index: 0).min())
            let added: Int64 = try fixture.connection.scalar(
                """
                INSERT INTO app.messages (account_id, conversation_id, body, sent_at)
                SELECT account_id, id, 'written after the archive', ended_at FROM app.conversations WHERE id = $1
                RETURNING id
                """, [touched])

            let approved = try fixture.lethe(["archive", "approve", "\(file.id)"])
            #expect(approved.status == 0 && approved.stdout.contains("approved"), "\(approved.output)")
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(job) == "deleted", "\(fixture.diagnostics())")
            #expect(try fixture.files(job: job).map(\.status) == ["deleted"])

            // Exactly the archived rows went: every gone row is in the manifest, the touched
            // conversation and its messages (old and new) stay, and so does everything else.
            let gone = try fixture.gone(account: 1)
            let conversations = try fixture.manifestIDs(job: job, type: "conversations", index: 0)
            #expect(Set(gone["app.conversations"] ?? []) == conversations.subtracting([touched]))
            let messages = try fixture.manifestIDs(job: job, type: "conversations", index: 1)
            #expect(Set(gone["app.messages"] ?? []).isSubset(of: messages))
            #expect(
                try fixture.connection.scalar("SELECT count(*) FROM app.conversations WHERE id = $1", [touched]) == 1)
            #expect(
                try fixture.connection.scalar(
                    "SELECT count(*) FROM app.messages WHERE conversation_id = $1 AND id = $2", [touched, added]) == 1)
            for (table, ids) in gone where table != "app.blobs" {
                let type = table == "app.messages" || table == "app.message_attachments" ? "conversations" : nil
                let index = table == "app.messages" ? 1 : table == "app.message_attachments" ? 2 : 0
                let archived = try fixture.connection.query(
                    """
                    SELECT row_key::bigint FROM lethe.archive_manifest
                    WHERE job_id = $1::uuid AND table_index = $2 AND ($3::text IS NULL OR entity_type = $3)
                    """, [job, index, type]
                ).map { try $0.decode(Int64.self, at: 0) }
                #expect(Set(ids).isSubset(of: Set(archived)), "\(table) lost rows that were not archived")
            }
            #expect(gone["app.staff"] == nil && gone["app.external_contacts"] == nil, "keep-only types stay")
            #expect(try fixture.checksum(account: 2) == otherAccount, "account 2 is untouched")
            let note: String? = try fixture.connection.scalar(
                "SELECT note FROM lethe.archive_jobs WHERE job_id = $1::uuid", [job])
            #expect(note?.contains("kept 1 root rows") == true, "\(note ?? "-")")
            // Every deletion record names the archive.
            #expect(
                try fixture.connection.scalar(
                    "SELECT count(*) FROM lethe.deletion_records WHERE account_id = '1' AND archive_id IS DISTINCT FROM $1",
                    [file.id]) == 0)
            #expect(try fixture.secretsStayedSecret())
        }
    }

    /// An account whose policy runs for some types only (a tier without an interval for every
    /// type, or types switched off): the job archives and deletes those, and the types it holds
    /// nothing of do not stop its deletion (they once did, for good: "deletion stopped: no policy").
    @Test func typesWithoutARunningPolicyDoNotStopTheDeletion() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database)
            try fixture.connection.execute(
                """
                SELECT lethe.set_policy_enabled('1', t.name, false) FROM lethe.entity_types t
                WHERE t.deletes AND t.name <> 'conversations'
                """)
            try fixture.addFileSite()
            try fixture.enableArchiving()
            try fixture.snapshot()
            let job = try fixture.startJob()
            try fixture.preApprove(job)
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(job) == "deleted", "\(fixture.diagnostics())")
            #expect(try fixture.files(job: job).map(\.status) == ["deleted"])
            let gone = try fixture.gone(account: 1)
            let conversations = try fixture.manifestIDs(job: job, type: "conversations", index: 0)
            #expect(!conversations.isEmpty && Set(gone["app.conversations"] ?? []) == conversations)
            #expect(gone["app.audit_log"] == nil && gone["app.webhook_calls"] == nil, "\(gone.keys.sorted())")
            #expect(gone["app.person_presences"] == nil && gone["app.persons"] == nil, "\(gone.keys.sorted())")
        }
    }

    /// A hold on one type, placed after the job archived it and before its deletion is
    /// approved: none of that type's rows go (the manifest keys are now read before the
    /// policy check, c52b57e; the hold must still stop the type), and once it is released
    /// exactly the archived rows go.
    @Test func aTypeHoldPlacedAfterPlanningStopsThatTypesDeletion() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database)
            try fixture.addFileSite()
            try fixture.enableArchiving()
            try fixture.snapshot()
            let job = try fixture.startJob()
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(job) == "uploaded", "\(fixture.diagnostics())")
            let conversations = try fixture.manifestIDs(job: job, type: "conversations", index: 0)
            #expect(!conversations.isEmpty)
            try fixture.connection.execute("SELECT lethe.place_hold('1', 'conversations', 'type hold', NULL)")
            let files = try fixture.files(job: job)
            try fixture.expectSuccess(["archive", "approve", "\(try #require(files.first).id)"])
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(job) != "deleted", "\(fixture.diagnostics())")
            #expect(try fixture.gone(account: 1)["app.conversations"] == nil)
            let hold: Int64 = try fixture.connection.scalar("SELECT max(id) FROM lethe.holds")
            try fixture.expectSuccess(["account", "release", "\(hold)"])
            try fixture.connection.execute(
                "UPDATE lethe.archive_jobs SET wake_at = now() WHERE job_id = $1::uuid", [job])
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(job) == "deleted", "\(fixture.diagnostics())")
            #expect(Set(try fixture.gone(account: 1)["app.conversations"] ?? []) == conversations)
        }
    }

    @Test func unknownOrChangedHostKeysAreRefusedAndNothingIsDeleted() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database)
            let empty = fixture.directory.appendingPathComponent("known_hosts_empty").path
            try "".write(toFile: empty, atomically: true, encoding: .utf8)
            // A known_hosts naming the server with another key: a changed host key.
            let other = fixture.directory.appendingPathComponent("other").path
            #expect(try ExternalTool.run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", other]).0 == 0)
            let server = try TestSSHServer.fromEnvironment()
            let publicKey = try String(contentsOfFile: other + ".pub", encoding: .utf8).split(separator: " ")
            let changed = fixture.directory.appendingPathComponent("known_hosts_changed").path
            try "[localhost]:\(server.port) \(publicKey[0]) \(publicKey[1])\n".write(
                toFile: changed, atomically: true, encoding: .utf8)
            try fixture.addSFTPSite(knownHosts: empty)
            try fixture.enableArchiving()
            try fixture.snapshot()
            let job = try fixture.startJob()
            try fixture.preApprove(job)
            try fixture.runUntilIdle()
            var files = try fixture.files(job: job)
            #expect(files.map(\.status) == ["upload_failed"], "\(files)")
            let unknownError: String = try fixture.connection.scalar("SELECT error FROM lethe.backup_log")
            #expect(unknownError.contains("host key"), "\(unknownError)")

            // Swap the site for one whose known_hosts holds another key.
            try fixture.addSFTPSite(host: "localhost", knownHosts: changed)
            try fixture.expectSuccess(["account", "site", "remove", "1", "1"])
            try fixture.expectSuccess(["archive", "retry", "\(files[0].id)"])
            try fixture.runUntilIdle()
            files = try fixture.files(job: job)
            #expect(files.map(\.status) == ["upload_failed"], "\(files)")
            let changedError: String = try fixture.connection.scalar("SELECT error FROM lethe.backup_log")
            #expect(changedError.contains("host key"), "\(changedError)")

            // Nothing reached the server and nothing was deleted, though deletion was approved.
            #expect(fileSize("\(server.root)/\(files[0].name)") == nil)
            #expect(try fixture.gone(account: 1).isEmpty)
            #expect(
                try fixture.connection.scalar(
                    "SELECT count(*) FROM lethe.deletion_records WHERE account_id = '1'", as: Int.self) == 0)
            #expect(try fixture.jobState(job) == "uploading")
            #expect(try fixture.secretsStayedSecret())
        }
    }

    /// sshd stopped while the upload is in progress (a throttled server, stopped once the
    /// `.part` file holds bytes): the file is `upload_failed`, its name never appears on the
    /// server and nothing is deleted; once the server is back, a retry uploads and deletes.
    @Test func aStoppedServerFailsTheUploadAndARetrySucceedsOnceItIsBack() async throws {
        try await withMigratedDatabase { database in
            // An archive of about 350 kB at about 160 KiB/s: the upload takes about 2 s, yet
            // every write call finishes well within the fixture's 5 s site_timeout.
            let fixture = try ArchiveFixture(database: database, scale: 1000)
            let sshd = try PrivateSSHD.start(sftpUploadRate: 160 * 1024)
            try fixture.addFileSite()
            try fixture.addSFTPSite(port: sshd.port, knownHosts: sshd.knownHostsPath)
            try fixture.enableArchiving()
            try fixture.snapshot()
            let job = try fixture.startJob()
            try fixture.preApprove(job)
            let sftpRoot = try TestSSHServer.fromEnvironment().root
            let log = fixture.directory.appendingPathComponent("run.log")
            let process = try LetheProcess.launch(
                ["run", "--until-idle", "--log-level", "debug", "--config", fixture.configPath], log: log)
            defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
            func runLog() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

            // Wait until the upload has written part of `.<name>.<random>.part`, then stop the server.
            func partialUpload() throws -> (path: String, size: Int64)? {
                guard let name = try fixture.files(job: job).first?.name else { return nil }
                for entry in (try? FileManager.default.contentsOfDirectory(atPath: sftpRoot)) ?? []
                where entry.hasPrefix(".\(name).") && entry.hasSuffix(".part") {
                    if let size = fileSize("\(sftpRoot)/\(entry)"), size > 0 { return ("\(sftpRoot)/\(entry)", size) }
                }
                return nil
            }
            var deadline = Date().addingTimeInterval(60)
            var found = try partialUpload()
            while found == nil {
                guard process.isRunning, Date() < deadline else {
                    Issue.record(
                        "no partial upload of job \(job) in \(sftpRoot) within 60 s:\n\(runLog().suffix(3000))")
                    return
                }
                usleep(20_000)
                found = try partialUpload()
            }
            try sshd.stop()
            let partial = try #require(found)
            deadline = Date().addingTimeInterval(60)
            while process.isRunning {
                guard Date() < deadline else {
                    Issue.record("lethe run --until-idle did not exit within 60 s:\n\(runLog().suffix(3000))")
                    return
                }
                usleep(50_000)
            }
            fixture.keep(runLog())
            #expect(process.terminationStatus == 0, "\(runLog().suffix(3000))")

            var files = try fixture.files(job: job)
            #expect(files.map(\.status) == ["upload_failed"], "\(files)")
            let file = try #require(files.first)
            let error: String? = try fixture.connection.scalar(
                "SELECT error FROM lethe.backup_log WHERE id = $1", [file.id])
            #expect(error?.isEmpty == false, "upload_failed without an error")
            // Stopped mid-transfer: the part file is short and the final name was never written.
            let size = try #require(file.size)
            #expect(partial.size < size, "\(partial.path) had \(partial.size) of \(size) bytes")
            #expect(fileSize(partial.path).map { $0 < size } ?? true, "\(partial.path)")
            #expect(fileSize("\(sftpRoot)/\(file.name)") == nil)
            // The file:// site holds it, the stopped one does not: nothing is deleted.
            #expect(fileSize("\(fixture.siteDirectory)/\(file.name)") == size)
            #expect(try fixture.gone(account: 1).isEmpty)
            #expect(
                try fixture.connection.scalar(
                    "SELECT count(*) FROM lethe.deletion_records WHERE account_id = '1'", as: Int.self) == 0)
            let listed = try fixture.lethe(["archive", "list", "--status", "failed"])
            #expect(listed.status == 0 && listed.stdout.contains("upload_failed"), "\(listed.output)")

            // The failed job wakes again by itself (later); `lethe archive retry` brings it forward.
            let wake: Date? = try fixture.connection.scalar(
                "SELECT wake_at FROM lethe.archive_jobs WHERE job_id = $1::uuid", [job])
            #expect(wake != nil)
            try sshd.restart()
            try fixture.expectSuccess(["archive", "retry", "\(file.id)"])
            // Left untouched for two hours, the killed upload's part file counts as abandoned:
            // the next upload run to that site removes it.
            try FileManager.default.setAttributes(
                [.modificationDate: Date().addingTimeInterval(-7200)], ofItemAtPath: partial.path)
            try fixture.runUntilIdle()
            files = try fixture.files(job: job)
            #expect(files.map(\.status) == ["deleted"], "\(files)")
            #expect(fileSize("\(sftpRoot)/\(file.name)") == size)
            #expect(fileSize(partial.path) == nil, "\(partial.path) is still on the site")
            #expect(!(try fixture.gone(account: 1).isEmpty))
            #expect(try fixture.secretsStayedSecret())
            try? FileManager.default.removeItem(atPath: partial.path)
        }
    }

    /// `kill -9` of the whole `lethe run` process at random moments, again and again, until
    /// the job is done: after every kill, every row gone is in the manifest and every site
    /// holds the archive; at the end the archived rows went exactly once.
    @Test func killNineAtAnyMomentLosesNothingAndFinishesOnTheNextClaim() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database, scale: 1500, maxAttempts: 25)
            try fixture.addFileSite()
            try fixture.addSFTPSite()
            try fixture.enableArchiving()
            try fixture.snapshot()
            let job = try fixture.startJob()
            try fixture.preApprove(job)
            let sftpRoot = try TestSSHServer.fromEnvironment().root
            var generator = SeededGenerator(seed: 6)
            var uploadedDigest: String?
            var kills = 0
            for round in 0..<30 {
                if try fixture.jobState(job) == "deleted" { break }
                let log = fixture.directory.appendingPathComponent("run-\(round).log")
                let process = try LetheProcess.launch(
                    ["run", "--log-level", "debug", "--config", fixture.configPath], log: log)
                // Early rounds die while starting, planning or packing; later ones while
                // uploading or deleting.
                usleep(UInt32(150_000 * (round + 1)) + UInt32.random(in: 0...300_000, using: &generator))
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                kills += 1
                fixture.keep((try? String(contentsOf: log, encoding: .utf8)) ?? "")

                // The invariant, after every kill.
                let gone = try fixture.gone(account: 1)
                let files = try fixture.files(job: job)
                if !gone.isEmpty {
                    for file in files {
                        #expect(fileSize("\(fixture.siteDirectory)/\(file.name)") == file.size)
                        #expect(fileSize("\(sftpRoot)/\(file.name)") == file.size)
                    }
                    let archived = try fixture.manifestIDs(job: job, type: "conversations", index: 0)
                    #expect(Set(gone["app.conversations"] ?? []).isSubset(of: archived))
                }
                // Once a site holds the archive it is never packed again: the same file to the end.
                let held: Int = try fixture.connection.scalar(
                    "SELECT count(*) FROM lethe.archive_uploads u JOIN lethe.archive_files f ON f.id = u.file_id WHERE f.job_id = $1::uuid AND u.status = 'uploaded'",
                    [job])
                if held > 0 {
                    let digest = files.first?.sha256
                    if uploadedDigest == nil { uploadedDigest = digest }
                    #expect(digest == uploadedDigest)
                }
            }
            #expect(kills >= 3)
            try fixture.runUntilIdle()
            let finalFiles = try fixture.files(job: job)
            let finalLog = try fixture.everythingLogged().suffix(3000)
            #expect(try fixture.jobState(job) == "deleted", "\(finalFiles)\n\(finalLog)")
            let files = try fixture.files(job: job)
            if let uploadedDigest { #expect(files.first?.sha256 == uploadedDigest) }

            // Every archived root went, exactly once; nothing else did.
            let gone = try fixture.gone(account: 1)
            let roots = try fixture.manifestIDs(job: job, type: "conversations", index: 0)
            #expect(Set(gone["app.conversations"] ?? []) == roots)
            let recorded: Int = try fixture.connection.scalar(
                "SELECT coalesce(sum(root_rows), 0)::int FROM lethe.deletion_records WHERE account_id = '1'")
            let rootsInManifest: Int = try fixture.connection.scalar(
                "SELECT count(*) FROM lethe.archive_manifest WHERE job_id = $1::uuid AND table_index = 0 AND entity_type IN (SELECT name FROM lethe.entity_types WHERE deletes)",
                [job])
            #expect(recorded == rootsInManifest, "deletion records count each archived root once")
            #expect(gone["app.staff"] == nil)
            // One file per site: no stray temporary files left by the kills that were promoted.
            let names = try FileManager.default.contentsOfDirectory(atPath: fixture.siteDirectory)
            #expect(names.filter { $0.hasSuffix(".zip") } == files.map(\.name))
            #expect(try fixture.secretsStayedSecret())
        }
    }

    /// The leader starts the daily job at the schedule hour (once per slot); a job above
    /// `split_size` becomes several parts, every one uploaded and verified; with auto-delete
    /// and required downloads, rows go only once every file is confirmed and the hour came.
    @Test func dailyJobSplitsAndAutoDeletesOnlyAfterConfirmedDownloads() async throws {
        try await withMigratedDatabase { database in
            // Parts close at a block boundary (1 MiB) once past split_size: incompressible blob
            // contents of about 5 MB make several.
            let fixture = try ArchiveFixture(database: database, extra: "  split_size: 1MiB")
            try fixture.connection.execute(
                """
                UPDATE app.blobs b SET content = (SELECT decode(string_agg(md5(random()::text || g), ''), 'hex')
                                                  FROM generate_series(1, 2500 + 0 * b.id) g)
                WHERE account_id = 1
                """)
            try fixture.addFileSite()
            try fixture.enableArchiving()
            try fixture.expectSuccess([
                "account", "archive", "1", "--schedule-hour", "3", "--auto-delete", "on", "--auto-delete-hour", "5",
                "--require-download", "on",
            ])
            try fixture.snapshot()
            // The schedule hour came (as if it were 03:00 UTC): one job, and the next run is tomorrow's 03:00.
            try fixture.connection.execute(
                "UPDATE lethe.archive_settings SET next_run_at = now() - interval '1 minute' WHERE account_id = '1'")
            try fixture.runUntilIdle()
            let jobs = try fixture.connection.query(
                "SELECT job_id::text FROM lethe.archive_jobs WHERE account_id = '1'"
            ).map { try $0.decode(String.self, at: 0) }
            #expect(jobs.count == 1)
            let next: Int = try fixture.connection.scalar(
                """
                SELECT extract(hour FROM next_run_at AT TIME ZONE 'UTC')::int FROM lethe.archive_settings
                WHERE account_id = '1' AND next_run_at > now()
                """)
            #expect(next == 3)
            let job = try #require(jobs.first)
            let files = try fixture.files(job: job)
            #expect(files.count >= 2, "split at 1 MiB: \(files)")
            #expect(files.allSatisfy { $0.status == "uploaded" }, "\(files)")
            #expect(files.dropFirst().allSatisfy { $0.name.contains("_part") })
            for file in files { #expect(fileSize("\(fixture.siteDirectory)/\(file.name)") == file.size) }
            let verified = try fixture.lethe(
                ["archive", "verify"] + files.map { "\(fixture.siteDirectory)/\($0.name)" })
            #expect(verified.status == 0, "\(verified.output)")
            let deleteAt: Int = try fixture.connection.scalar(
                "SELECT extract(hour FROM delete_at AT TIME ZONE 'UTC')::int FROM lethe.archive_jobs WHERE job_id = $1::uuid",
                [job])
            #expect(deleteAt == 5)

            // The auto-delete hour came, but the site has not confirmed every download: rows stay.
            try fixture.connection.execute(
                "UPDATE lethe.archive_jobs SET delete_at = now(), wake_at = now() WHERE job_id = $1::uuid", [job])
            try fixture.expectSuccess(["archive", "confirm", "\(files[0].id)"])
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(job) == "uploaded")
            #expect(try fixture.gone(account: 1).isEmpty)
            // A job waiting for downloads sleeps: it is not woken on every tick.
            #expect(
                try fixture.connection.scalar("SELECT count(*) FROM lethe.tasks WHERE kind = 'archive'", as: Int.self)
                    < 8)
            let early = try fixture.lethe(["archive", "confirm", "\(files[0].id)"])
            #expect(early.status == 0, "confirming twice is harmless: \(early.output)")
            // Every file confirmed (the SQL function a backup site's puller would call), but a
            // legal hold came first: deletion stops, the files stay `downloaded`, nothing goes.
            try fixture.expectSuccess(["account", "hold", "1", "--reason", "litigation"])
            for file in files.dropFirst() {
                try fixture.connection.execute("SELECT lethe.confirm_archive_download($1)", [file.id])
            }
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(job) == "uploaded")
            let heldFiles = try fixture.files(job: job)
            #expect(heldFiles.allSatisfy { $0.status == "downloaded" }, "\(heldFiles)")
            #expect(try fixture.gone(account: 1).isEmpty)
            let held: String? = try fixture.connection.scalar(
                "SELECT note FROM lethe.archive_jobs WHERE job_id = $1::uuid", [job])
            #expect(held?.contains("litigation") == true, "\(held ?? "-")")
            // Released: the next look (or an approval, as here) deletes.
            let hold: Int64 = try fixture.connection.scalar("SELECT max(id) FROM lethe.holds")
            try fixture.expectSuccess(["account", "release", "\(hold)"])
            try fixture.expectSuccess(["archive", "approve", "\(files[0].id)"])
            try fixture.runUntilIdle()
            #expect(try fixture.jobState(job) == "deleted", "\(fixture.diagnostics())")
            #expect(!(try fixture.gone(account: 1).isEmpty))
            #expect(try fixture.files(job: job).allSatisfy { $0.status == "deleted" })
            // A confirmation for a deleted file is refused with the reason.
            let late = try fixture.lethe(["archive", "confirm", "\(files[0].id)"])
            #expect(late.status == 2 && late.stderr.contains("only an uploaded file"), "\(late.output)")
            #expect(try fixture.secretsStayedSecret())
        }
    }

    @Test func badKeysFilesAndURLsExitTwoWithAPreciseMessage() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database)
            for (weak, missing) in [
                ("Short1!", "it has 7 characters"), ("alllowercase1", "no upper-case letter"),
                ("NoDigitsOrSymbols", "no digit or symbol"),
            ] {
                let file = fixture.directory.appendingPathComponent("weak.key").path
                try (weak + "\n").write(toFile: file, atomically: true, encoding: .utf8)
                let result = try fixture.lethe(["account", "archive", "1", "--key-file", file])
                #expect(result.status == 2, "\(result.output)")
                #expect(result.stderr.contains(missing) && result.stderr.contains("at least 8 characters"))
                #expect(!result.output.contains(weak), "the refused key is not echoed")
            }
            // An unreadable master key file, from the environment or the config file.
            let unreadable = try fixture.lethe(
                ["account", "archive", "1", "--key-file", fixture.keyFile],
                environment: ["LETHE_MASTER_KEY_FILE": "/nonexistent/master.key"])
            #expect(unreadable.status == 2, "\(unreadable.output)")
            #expect(unreadable.stderr.contains("/nonexistent/master.key"), "\(unreadable.output)")
            let malformed = fixture.directory.appendingPathComponent("short.master").path
            try "abc123\n".write(toFile: malformed, atomically: true, encoding: .utf8)
            let short = try fixture.lethe(
                ["account", "archive", "1", "--key-file", fixture.keyFile],
                environment: ["LETHE_MASTER_KEY_FILE": malformed])
            #expect(short.status == 2 && short.stderr.contains(malformed), "\(short.output)")
            #expect(!short.output.contains("abc123"), "the master key file's content is not echoed")
            let noKeyFile = try fixture.lethe(["account", "archive", "1", "--key-file", "/nonexistent/archive.key"])
            #expect(noKeyFile.status == 2 && noKeyFile.stderr.contains("/nonexistent/archive.key"))
            // Malformed site URLs.
            for url in [
                "ftp://host/backups", "sftp://host/backups", "sftp://user@host:99999/backups", "file://relative",
            ] {
                let result = try fixture.lethe(["account", "site", "add", "1", url])
                #expect(result.status == 2, "\(url): \(result.output)")
                #expect(result.stderr.contains(url) || result.stderr.contains("sftp://"), "\(url): \(result.stderr)")
            }
            #expect(try fixture.connection.scalar("SELECT count(*) FROM lethe.backup_sites", as: Int.self) == 0)
            // Enabling without a site is refused too, and leaves archiving off.
            let noSite = try fixture.lethe(["account", "archive", "1", "--key-file", fixture.keyFile, "--enable"])
            #expect(noSite.status == 2, "\(noSite.output)")
            #expect(try fixture.secretsStayedSecret())
        }
    }
}
