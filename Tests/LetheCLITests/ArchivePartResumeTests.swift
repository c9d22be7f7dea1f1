import Foundation
import Postgres
import TestSupport
import Testing

/// Packing one part per transaction (issue 18): a `kill -9` of the worker while it plans or
/// packs costs at most the part in flight, and what the job deletes is still exactly what its
/// parts hold.
@Suite(.serialized) struct ArchivePartResumeTests {
    /// Blocks the worker inside a part: holds `app.blobs` exclusively (granted once the part
    /// in flight committed; the next part then waits for it on its first read of the contents)
    /// until a backend of the test database waits for a lock. True when one does.
    private static func holdWorkerInsidePart(_ lock: Connection, job: String, fixture: ArchiveFixture) throws -> Bool {
        try lock.execute("BEGIN")
        try lock.execute("LOCK TABLE app.blobs IN ACCESS EXCLUSIVE MODE")
        let deadline = Date() + 120
        while Date() < deadline {
            let waiting: Int = try fixture.connection.scalar(
                """
                SELECT count(*)::int FROM pg_stat_activity
                WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()
                """)
            if waiting > 0 { return true }
            if try fixture.jobState(job) != "packing" { return false }
            usleep(20_000)
        }
        return false
    }

    @Test func killNineWhilePlanningAndPackingRepeatsAtMostThePartInFlight() async throws {
        try await withMigratedDatabase { database in
            try await offThePool {
                // A long lease: no second claim of the task while the first still packs (that would
                // repeat a part too, correctly, but this test counts the kills' repeats).
                let fixture = try ArchiveFixture(
                    database: database, maxAttempts: 25, extra: "  split_size: 1MiB\n  plan_chunk_roots: 5",
                    edit: { $0.replacingOccurrences(of: "lease: 3s", with: "lease: 8s") })
                // About 24 MiB of incompressible blob contents: parts of about 1 MiB each.
                try fixture.connection.execute(
                    """
                    UPDATE app.blobs b SET content = (
                        SELECT decode(string_agg(md5(random()::text || g), ''), 'hex')
                        FROM generate_series(1, 1 + 0 * b.id + (24 << 20) / 16 / (SELECT count(*) FROM app.blobs WHERE account_id = 1)) g)
                    WHERE account_id = 1
                    """)
                try fixture.addFileSite()
                try fixture.enableArchiving()
                try fixture.snapshot()
                let before = try fixture.checksum(account: 1)
                let job = try fixture.startJob()
                try fixture.preApprove(job)
                let lock = try database.connect()
                defer { lock.close() }

                func launch(_ name: String) throws -> Process {
                    try LetheProcess.launch(
                        ["run", "--log-level", "debug", "--config", fixture.configPath],
                        log: fixture.directory.appendingPathComponent("\(name).log"))
                }
                func kill9(_ process: Process, _ name: String) {
                    kill(process.processIdentifier, SIGKILL)
                    process.waitUntilExit()
                    let log = fixture.directory.appendingPathComponent("\(name).log")
                    fixture.keep((try? String(contentsOf: log, encoding: .utf8)) ?? "")
                }
                func wait(_ what: String, _ condition: () throws -> Bool) throws {
                    let deadline = Date() + 180
                    while Date() < deadline {
                        if try condition() { return }
                        usleep(20_000)
                    }
                    throw TestSetupError("timed out waiting for \(what):\n\(fixture.diagnostics())")
                }
                func committedParts() throws -> Int {
                    try fixture.connection.scalar(
                        """
                        SELECT coalesce((SELECT (cursor->>'part')::int FROM lethe.archive_pack_progress
                                         WHERE job_id = $1::uuid), 0)
                        """, [job])
                }

                // 1. Killed while planning, after a chunk committed.
                let planner = try launch("plan")
                try wait("a planned chunk") {
                    try fixture.connection.scalar(
                        "SELECT count(*)::int FROM lethe.archive_manifest WHERE job_id = $1::uuid", [job], as: Int.self)
                        > 0
                }
                let stateAtPlanKill = try fixture.jobState(job)
                kill9(planner, "plan")
                // Planning may have finished just before the kill: then the kill hit a part.
                let planKillHitAPart = stateAtPlanKill == "packing"

                // 2. Killed inside a part, after part 1 and after part 3 committed.
                var packKills = 0
                var partsBeforeKills: [Int] = []
                for (round, committed) in [1, 3].enumerated() {
                    let packer = try launch("pack-\(round)")
                    try wait("part \(committed) committed") {
                        try committedParts() >= committed
                            || !["planning", "packing"].contains(try fixture.jobState(job))
                    }
                    let inside = try Self.holdWorkerInsidePart(lock, job: job, fixture: fixture)
                    let parts = try committedParts()
                    kill9(packer, "pack-\(round)")
                    try lock.execute("ROLLBACK")
                    if inside {
                        packKills += 1
                        partsBeforeKills.append(parts)
                    }
                }

                // 3. A worker finishes the job: packs the rest, uploads, deletes.
                try fixture.runUntilIdle()
                try #require(try fixture.jobState(job) == "deleted", "\(fixture.diagnostics())")
                let files = try fixture.files(job: job)
                try #require(files.count >= 5, "expected several parts: \(files)")
                #expect(packKills == 2, "stateAtPlanKill \(stateAtPlanKill), parts at the kills \(partsBeforeKills)")
                #expect(partsBeforeKills.max() ?? 0 >= 3, "\(partsBeforeKills)")

                // Each kill repeated the part in flight and nothing more: a pack that started over
                // would have begun every part committed before the kill again.
                let begun: Int = try fixture.connection.scalar(
                    "SELECT parts_begun::int FROM lethe.archive_pack_progress WHERE job_id = $1::uuid", [job])
                let allowed = packKills + (planKillHitAPart ? 1 : 0)
                #expect(begun - files.count <= allowed, "\(begun) part transactions for \(files.count) parts")
                #expect(begun - files.count >= 0)

                // Everything deleted is in the archive: restored from the site's parts, account 1 is
                // as it was before the job (blobs included).
                let gone = try fixture.gone(account: 1)
                #expect(gone["app.conversations"] != nil && gone["app.blobs"] != nil, "\(gone.keys)")
                let paths = files.map { "\(fixture.siteDirectory)/\($0.name)" }
                try fixture.expectSuccess(["archive", "verify", "--key-file", fixture.keyFile] + paths)
                let restore = try fixture.lethe(["archive", "restore"] + paths)
                #expect(restore.status == 0, "\(restore.output)")
                #expect(try fixture.checksum(account: 1) == before)
                #expect(try fixture.secretsStayedSecret())
            }
        }
    }
}
