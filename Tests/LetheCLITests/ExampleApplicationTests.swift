import Foundation
import Postgres
import TestSupport
import Testing

/// The example application (examples/contact-centre) under retention: its guards hold, and
/// `lethe demo` runs end to end.
@Suite struct ExampleApplicationTests {

    @Test func guardsKeepWhatMustStay() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try ExampleApplication.load(on: connection, tenants: 3, scale: 600)
            let path = try ExampleApplication.configuration(url: database.url)
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(try LetheProcess.run(["policy", "sync", "--config", path]).status == 0)
            #expect(try LetheProcess.run(["account", "add", "1", "2", "3", "--config", path]).status == 0)
            // Shortest intervals everywhere: everything old enough is eligible by age.
            try connection.execute(
                """
                SELECT lethe.set_policy(a::text, t.name, t.min_interval)
                FROM generate_series(1, 3) a, lethe.entity_types t WHERE t.deletes
                """)
            try connection.executeScript(
                """
                CREATE TABLE before_open AS SELECT id FROM app.conversations WHERE ended_at IS NULL;
                CREATE TABLE before_named AS SELECT id FROM app.persons WHERE NOT anonymous;
                CREATE TABLE before_staff AS SELECT (SELECT count(*) FROM app.staff) AS staff,
                                                   (SELECT count(*) FROM app.external_contacts) AS contacts;
                CREATE TABLE before_open_enquiries AS SELECT id FROM app.enquiries WHERE status = 'open';
                CREATE TABLE before_articles AS
                SELECT article_id, least(count(*), 3) AS kept FROM app.article_versions GROUP BY article_id;
                """)
            // Three checks: presences go, then the persons they named, then those persons' device infos.
            for _ in 0..<3 {
                try connection.execute("UPDATE lethe.retention_runs SET next_run_at = now()")
                let run = try LetheProcess.run(["run", "--until-idle", "--config", path])
                #expect(run.status == 0, "\(run.output)")
            }
            func count(_ sql: String) throws -> Int { try connection.scalar(sql) }
            #expect(try count("SELECT count(*) FROM lethe.deletion_log WHERE entity_type = 'conversations'") > 0)
            #expect(try count("SELECT count(*) FROM lethe.deletion_log WHERE entity_type = 'persons'") > 0)
            // Open conversations, named persons, open enquiries, staff and contacts all stay.
            #expect(
                try count("SELECT count(*) FROM before_open WHERE id NOT IN (SELECT id FROM app.conversations)") == 0)
            #expect(try count("SELECT count(*) FROM before_named WHERE id NOT IN (SELECT id FROM app.persons)") == 0)
            #expect(
                try count("SELECT count(*) FROM before_open_enquiries WHERE id NOT IN (SELECT id FROM app.enquiries)")
                    == 0)
            #expect(
                try count(
                    """
                    SELECT count(*) FROM before_staff
                    WHERE staff <> (SELECT count(*) FROM app.staff) OR contacts <> (SELECT count(*) FROM app.external_contacts)
                    """) == 0)
            // Every person left that is anonymous is still referenced, or not old enough.
            #expect(
                try count(
                    """
                    SELECT count(*) FROM app.persons r
                    WHERE r.anonymous AND r.last_seen_at < now() - interval '7 days'
                      AND NOT EXISTS (SELECT 1 FROM app.person_presences pp WHERE pp.person_id = r.id)
                      AND NOT EXISTS (SELECT 1 FROM app.conversations c WHERE c.person_id = r.id)
                    """) == 0)
            // No device info that something still refers to went (foreign keys would refuse), and
            // the unreferenced old ones did.
            #expect(
                try count(
                    """
                    SELECT count(*) FROM app.device_infos r WHERE r.created_at < now() - interval '7 days'
                      AND NOT EXISTS (SELECT 1 FROM app.persons p WHERE p.device_info_id = r.id)
                      AND NOT EXISTS (SELECT 1 FROM app.person_presences pp WHERE pp.device_info_id = r.id)
                    """) == 0)
            #expect(try count("SELECT count(*) FROM app.device_infos") > 0)
            // Each article keeps its newest versions (up to 3).
            #expect(
                try count(
                    """
                    SELECT count(*) FROM before_articles b
                    WHERE b.kept > (SELECT count(*) FROM app.article_versions v WHERE v.article_id = b.article_id)
                    """) == 0)
            #expect(
                try count("SELECT count(*) FROM app.article_versions")
                    >= (try count("SELECT sum(kept)::int FROM before_articles")))
        }
    }

    /// The demo runs end to end, and its two archiving accounts (5 to a file:// site, 6 to an
    /// sftp:// site on the demo's own sshd) were archived, verified and deleted only after the
    /// upload. With --keep, the sites stay for the test to check the files itself.
    @Test func demoRunsEndToEndAndArchivesBeforeDeleting() async throws {
        // Off the cooperative pool: minutes of waiting there stall every other async test.
        let result = try await offThePool {
            try LetheProcess.run(["demo", "--tenants", "10", "--scale", "300", "--keep"])
        }
        let kept = result.stdout.components(separatedBy: "the database directory is kept: ").last?
            .split(separator: "\n").first.map(String.init)
        defer { if let kept, kept.contains("lethe-demo-") { try? FileManager.default.removeItem(atPath: kept) } }
        #expect(result.status == 0, "\(result.output)")
        #expect(result.stdout.contains("rows deleted in"))
        #expect(result.stdout.contains("account suspended"))
        #expect(result.stdout.contains("held: litigation"))
        #expect(result.stdout.contains("stopped; the database directory is kept"))

        // The archive part, as the demo reports it.
        let out = result.stdout
        #expect(
            out.contains("accounts 5 and 6 archive before deleting: 5 to a file:// site, 6 to an sftp:// site"),
            "\(out)")
        #expect(out.contains("$ lethe account site add 6 sftp://"), "\(out)")
        #expect(out.contains("backup log of the archiving accounts (lethe.backup_log): uploaded, waiting for approval"))
        #expect(out.contains("nothing of accounts 5 and 6 deleted yet"), "\(out)")
        #expect(out.components(separatedBy: "$ lethe archive verify ").count == 3, "\(out)")
        #expect(out.components(separatedBy: ": OK, ").count == 3, "\(out)")
        #expect(out.components(separatedBy: "$ lethe archive approve ").count == 3, "\(out)")
        #expect(out.contains("backup log after the approved deletion"))
        #expect(
            out.contains("every batch of accounts 5 and 6 names its archive file and came after its upload"), "\(out)")
        // Each archiving account has a deletion row in the report, with rows deleted.
        let evidence = out.components(separatedBy: "archived first, deleted after").last ?? ""
        for (account, scheme) in [("5", "file://"), ("6", "sftp://")] {
            let line = evidence.split(separator: "\n").first { $0.hasPrefix("    \(account) ") }
            let fields = line?.split(separator: " ") ?? []
            #expect(fields.count == 6 && fields[1].hasPrefix(scheme), "\(line ?? "no line for account \(account)")")
            #expect((fields.count == 6 ? Int(fields[4]) ?? 0 : 0) > 0, "\(line ?? "")")
        }

        // The files are on the sites, and open and verify with each account's own key.
        let directory = try #require(kept, "\(out)")
        for (account, site) in [("5", "file-5"), ("6", "sftp-6")] {
            let siteDirectory = "\(directory)/archive/sites/\(site)"
            let names = try FileManager.default.contentsOfDirectory(atPath: siteDirectory)
            let archives = names.filter { $0.hasPrefix("backup_\(account)_") && $0.hasSuffix(".zip") }
            #expect(archives.count == 1 && archives.count == names.count, "\(names)")
            for name in archives {
                let verified = try LetheProcess.run([
                    "archive", "verify", "\(siteDirectory)/\(name)", "--key-file",
                    "\(directory)/archive/archive-key-\(account)",
                ])
                #expect(verified.status == 0 && verified.stdout.contains(": OK, "), "\(verified.output)")
            }
        }
    }

    /// The short version of `lethe bench retention`: every measurement ends, and Lethe's
    /// workers delete the same rows as the single statement, with fixed and adaptive batches.
    /// (Its worker once waited forever for orphan GC, which a batch makes due and only a
    /// coordinator enqueues.)
    @Test(.timeLimit(.minutes(3))) func retentionBenchmarkEndsAndDeletesWhatTheStatementDeletes() async throws {
        let result = try await offThePool {
            try LetheProcess.run([
                "bench", "retention", "--conversations", "1000", "--messages", "2", "--batches", "250,adaptive:250",
                "--processes", "1,2", "--database-url", try TestEnvironment.databaseURL(),
            ])
        }
        #expect(result.status == 0, "\(result.output)")
        // The table's rows: METHOD, BATCH, ROWS, … (not the CPU table after it, whose rows
        // start with the same methods).
        let table = result.stdout.components(separatedBy: "Where the time went")[0]
        func rows(_ method: String) -> [String] {
            table.split(separator: "\n").filter { $0.hasPrefix(method) }
                .compactMap { $0.dropFirst(method.count).split(separator: " ").dropFirst().first.map(String.init) }
        }
        let single = try #require(rows("single DELETE statement").first, "\(result.output)")
        #expect(rows("lethe, 1 worker process ") == [single, single], "\(result.output)")
        #expect(rows("lethe, 2 worker processes") == [single, single], "\(result.output)")
        #expect(result.stdout.contains("adaptive:250"), "\(result.output)")
    }
}
