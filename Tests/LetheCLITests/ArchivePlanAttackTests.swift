import Foundation
import Postgres
import Store
import TestSupport
import Testing

/// Attacks on planning in chunks (docs/design-archive-pipeline.md, step 1) with a table of
/// the tests' own: a composite key of text and integer whose text forms sort unlike the
/// key (`"10"` before `"9"`, commas, quotes, backslashes, JSON-looking and non-ASCII tags),
/// most roots sharing one clock so chunk boundaries fall between equal clocks, instants an
/// hour apart that read the same in New York (the DST change), NULL clocks and keys, and
/// the session's time zone changed between chunks.
@Suite(.serialized) struct ArchivePlanAttackTests {
    static let tags = [
        "a", "A", "a,b", "q\"uote", "back\\slash", "10", "9", "", " ", "[1, 2]", "null", "\"", "ü", "Ü", "é",
        "ß", "😀", "x\ty",
    ]
    /// Old clocks (UTC), most of them equal; the last two read 01:30 in New York on 2025-11-02.
    static let oldClocks = ["2020-03-08 07:30:00", "2025-11-02 05:30:00", "2025-11-02 06:30:00"]
    static let zones = ["America/New_York", "Asia/Kathmandu", "Pacific/Chatham", "Europe/Amsterdam", "UTC"]

    /// Adds `app.adv_events` (clock of type `clock`, deleting) and `app.adv_keep` (keep-only,
    /// clock NULL) with the same key, their rows, and the types to the fixture's registry.
    static func addEvents(_ fixture: ArchiveFixture, clock: String) throws -> Int {
        try fixture.connection.executeScript(
            """
            CREATE TABLE app.adv_events (account_id bigint NOT NULL, tag text NOT NULL, n integer, at \(clock),
                                         body text, UNIQUE (tag, n));
            CREATE INDEX ON app.adv_events (account_id, at);
            CREATE TABLE app.adv_keep (account_id bigint NOT NULL, tag text NOT NULL, n integer NOT NULL,
                                       at timestamptz, PRIMARY KEY (tag, n))
            """)
        var old = 0
        for (index, tag) in tags.enumerated() {
            for n in [1, 2, 10, -3] {
                // Most roots share the first clock; one in three sits on either side of the DST change.
                let at = oldClocks[(index + n) % 3 == 0 ? 1 + (index % 2) : 0]
                try fixture.connection.execute(
                    "INSERT INTO app.adv_events VALUES (1, $1, $2, ($3::timestamp AT TIME ZONE 'UTC')::\(clock), 'x')",
                    [tag, n, at])
                old += 1
                try fixture.connection.execute(
                    "INSERT INTO app.adv_events VALUES (2, $1, $2, ($3::timestamp AT TIME ZONE 'UTC')::\(clock), 'x')",
                    [tag, n + 1000, at])
                try fixture.connection.execute(
                    "INSERT INTO app.adv_keep VALUES ($3, $1, $2, NULL)", [tag, n, n == 10 ? 2 : 1])
            }
            // Never eligible: no clock, a clock ahead, a NULL key part.
            try fixture.connection.execute(
                """
                INSERT INTO app.adv_events VALUES (1, $1, 500, NULL, 'x'), (1, $1, 501, (now() + interval '2 days')::\(clock), 'x'),
                                                  (1, $1, NULL, '2020-01-01', 'x')
                """, [tag])
        }
        let types = """
              adv_events:
                table: app.adv_events
                key: [tag, n]
                account: account_id
                clock: at
                interval: { default: 1y, min: 1d, max: 3y }
                batch_size: 5
              adv_keep:
                table: app.adv_keep
                key: [tag, n]
                account: account_id
                clock: at
                delete: false
                interval: { default: 1y, min: 1d, max: 10y }

            """
        try (try String(contentsOfFile: fixture.configPath, encoding: .utf8) + "\n" + types)
            .write(toFile: fixture.configPath, atomically: true, encoding: .utf8)
        try fixture.expectSuccess(["policy", "sync"])
        try fixture.connection.execute("SELECT lethe.set_policy('1', 'adv_events', interval '1 day')")
        return old
    }

    /// The job's manifest rows of `type`'s root: key → hash.
    static func roots(_ id: String, type: String, _ fixture: ArchiveFixture) throws -> [String: String?] {
        Dictionary(
            uniqueKeysWithValues: try fixture.connection.query(
                """
                SELECT row_key, row_hash FROM lethe.archive_manifest
                WHERE job_id = $1::uuid AND entity_type = $2 AND table_index = 0
                """, [id, type]
            ).map { try $0.decode((String, String?).self) })
    }

    /// The keys of `table`'s rows of account 1 as the manifest writes them, with their hash.
    static func current(_ table: String, where condition: String, _ fixture: ArchiveFixture) throws -> [String: String?]
    {
        Dictionary(
            uniqueKeysWithValues: try fixture.connection.query(
                """
                SELECT jsonb_build_array(r.tag, r.n)::text, md5(row_to_json(r)::text) FROM \(table) r
                WHERE r.account_id = 1 AND \(condition)
                """
            ).map { try $0.decode((String, String?).self) })
    }

    /// Plans job `id` to the end, each step on a new connection (another worker) whose
    /// database default time zone changed before it, `chunk` roots a step.
    static func planInTurns(_ id: String, chunk: Int, maxRoots: Int = 1_000_000, _ fixture: ArchiveFixture) throws {
        let jobs = try fixture.archiveJobs(chunk: chunk, maxRootsPerType: maxRoots)
        let job = try #require(try fixture.openJob(id, jobs))
        var step = 0
        defer { try? setDatabaseTimeZone(nil, fixture) }
        while true {
            try setDatabaseTimeZone(zones[step % zones.count], fixture)
            step += 1
            let connection = try fixture.database.connect()
            defer { connection.close() }
            guard try jobs.planStep(job, on: connection).continues else { break }
        }
    }

    /// Sets (nil: resets) the time zone new sessions of the fixture's database start in.
    static func setDatabaseTimeZone(_ zone: String?, _ fixture: ArchiveFixture) throws {
        try fixture.connection.execute(
            """
            DO $$ BEGIN EXECUTE format(CASE WHEN \(zone == nil ? "true" : "false") THEN 'ALTER DATABASE %I RESET TimeZone'
                                            ELSE 'ALTER DATABASE %I SET TimeZone = %L' END, current_database(), '\(zone ?? "")');
            END $$
            """)
    }

    /// Chunks of 1 and 2 roots, two workers and five time zones record exactly the eligible
    /// roots (every old one once, none without a clock, ahead, with a NULL key part, or of
    /// account 2) with their hashes, and every keep-only row: the same as one chunk does.
    @Test(arguments: ["timestamptz", "timestamp", "date"])
    func chunksAcrossEqualClocksTimeZonesAndHostileKeysRecordEveryRootOnce(clock: String) async throws {
        try await withMigratedDatabase { database in
            try await offThePool {
                let fixture = try ArchiveFixture(database: database, scale: 10)
                let old = try Self.addEvents(fixture, clock: clock)
                try fixture.addFileSite()
                try fixture.enableArchiving()
                let eligible = try Self.current(
                    "app.adv_events", where: "r.at < '2026-01-01' AND r.n IS NOT NULL", fixture)
                #expect(eligible.count == old)
                let kept = try Self.current("app.adv_keep", where: "true", fixture)
                for chunk in [1, 2, 1_000_000] {
                    let id = try fixture.startJob()
                    try Self.planInTurns(id, chunk: chunk, fixture)
                    #expect(try fixture.jobState(id) == "packing")
                    #expect(try Self.roots(id, type: "adv_events", fixture) == eligible, "chunk \(chunk)")
                    #expect(try Self.roots(id, type: "adv_keep", fixture) == kept, "chunk \(chunk)")
                    let counted: Int = try fixture.connection.scalar(
                        "SELECT (counts -> 'adv_events' ->> 'app.adv_events')::int FROM lethe.archive_jobs WHERE job_id = $1::uuid",
                        [id])
                    #expect(counted == old)
                    try fixture.connection.execute("DELETE FROM lethe.archive_jobs WHERE job_id = $1::uuid", [id])
                }
            }
        }
    }

    /// `max_roots_per_type` below, at and above the chunk size takes exactly the first roots
    /// in (clock, key) order, with the keyset crossing runs of equal clocks.
    @Test func theCapTakesTheFirstRootsInKeysetOrder() async throws {
        try await withMigratedDatabase { database in
            try await offThePool {
                let fixture = try ArchiveFixture(database: database, scale: 10)
                _ = try Self.addEvents(fixture, clock: "timestamptz")
                try fixture.addFileSite()
                try fixture.enableArchiving()
                for (chunk, cap) in [(3, 7), (7, 7), (10, 7), (1, 5), (4, 40)] {
                    let expected = Set(
                        try fixture.connection.query(
                            """
                            SELECT jsonb_build_array(r.tag, r.n)::text FROM app.adv_events r
                            WHERE r.account_id = 1 AND r.at < '2026-01-01' AND r.n IS NOT NULL
                            ORDER BY r.at, r.tag, r.n LIMIT $1
                            """, [cap]
                        ).map { try $0.decode(String.self, at: 0) })
                    let id = try fixture.startJob()
                    try Self.planInTurns(id, chunk: chunk, maxRoots: cap, fixture)
                    #expect(
                        Set(try Self.roots(id, type: "adv_events", fixture).keys) == expected,
                        "chunk \(chunk), cap \(cap)")
                    try fixture.connection.execute("DELETE FROM lethe.archive_jobs WHERE job_id = $1::uuid", [id])
                }
            }
        }
    }

    /// Between chunks: a planned root moves past the cursor, a root arrives at the cursor's
    /// clock on either side of its key, an unplanned root moves behind the cursor, and the
    /// policy is lengthened past some planned roots. The worker (chunks of 1) finishes the
    /// job; only roots archived as they are and eligible now are deleted, each counted once.
    @Test func rowsMovedInsertedAndAPolicyLengthenedBetweenChunks() async throws {
        try await withMigratedDatabase { database in
            try await offThePool {
                let fixture = try ArchiveFixture(database: database, scale: 10, extra: "  plan_chunk_roots: 1")
                _ = try Self.addEvents(fixture, clock: "timestamptz")
                // Young roots: eligible under 1 day, no longer under 30 days.
                try fixture.connection.execute(
                    "UPDATE app.adv_events SET at = now() - interval '10 days' WHERE account_id = 1 AND n = 2 AND at < '2026-01-01'"
                )
                try fixture.addFileSite()
                try fixture.enableArchiving()
                try fixture.snapshot()
                let id = try fixture.startJob()
                let jobs = try fixture.archiveJobs(chunk: 2)
                let job = try #require(try fixture.openJob(id, jobs))
                while try Self.roots(id, type: "adv_events", fixture).count < 6 {
                    guard try jobs.planStep(job, on: fixture.connection).continues else { break }
                }
                let planned = try Self.roots(id, type: "adv_events", fixture)
                #expect(planned.count == 6)
                let cursor = try fixture.connection.query(
                    """
                    SELECT plan_progress -> 'adv_events' ->> 'clock', plan_progress -> 'adv_events' ->> 'key'
                    FROM lethe.archive_jobs WHERE job_id = $1::uuid
                    """, [id])[0].decode((String, String).self)
                let (moved, _) = try #require(planned.first { $0.key != cursor.1 })
                // A planned root past the cursor (still old): met again, counted once, spared.
                try fixture.connection.execute(
                    """
                    UPDATE app.adv_events SET at = '2025-12-01' WHERE tag = ($1::jsonb ->> 0) AND n = ($1::jsonb ->> 1)::int
                    """, [moved])
                // Roots arriving at the cursor's clock: before its key (skipped), after it (planned).
                let (at, tag, n) = (
                    "(($1::jsonb) #>> '{}')::timestamptz", "($2::jsonb ->> 0)", "($2::jsonb ->> 1)::int"
                )
                try fixture.connection.execute(
                    """
                    INSERT INTO app.adv_events VALUES (1, \(tag), \(n) - 5000, \(at), 'before'),
                                                      (1, \(tag), \(n) + 5000, \(at), 'after')
                    """, [cursor.0, cursor.1])
                let cursorKey = try JSONSerialization.jsonObject(with: Data(cursor.1.utf8)) as? [Any]
                let cursorTag = try #require(cursorKey?.first as? String)
                let cursorN = try #require((cursorKey?.last as? NSNumber)?.intValue)
                let before: String = try fixture.connection.scalar(
                    "SELECT jsonb_build_array($1::text, $2::int)::text", [cursorTag, cursorN - 5000])
                let after: String = try fixture.connection.scalar(
                    "SELECT jsonb_build_array($1::text, $2::int)::text", [cursorTag, cursorN + 5000])
                // An unplanned old root moved behind the cursor: left for the next job.
                let behind: String = try fixture.connection.scalar(
                    """
                    SELECT jsonb_build_array(tag, n)::text FROM app.adv_events
                    WHERE account_id = 1 AND at = '2025-11-02 06:30:00+00' AND jsonb_build_array(tag, n)::text <> ALL($1::text[])
                    LIMIT 1
                    """, [Array(planned.keys)])
                try fixture.connection.execute(
                    """
                    UPDATE app.adv_events SET at = '2019-01-01' WHERE tag = ($1::jsonb ->> 0) AND n = ($1::jsonb ->> 1)::int
                    """, [behind])
                try fixture.connection.execute("SELECT lethe.set_policy('1', 'adv_events', interval '30 days')")

                try fixture.preApprove(id)
                try fixture.runUntilIdle()
                #expect(try fixture.jobState(id) == "deleted", "\(fixture.diagnostics())")
                let manifest = try Self.roots(id, type: "adv_events", fixture)
                let counted: Int = try fixture.connection.scalar(
                    "SELECT (counts -> 'adv_events' ->> 'app.adv_events')::int FROM lethe.archive_jobs WHERE job_id = $1::uuid",
                    [id])
                #expect(counted == manifest.count)
                #expect(manifest[after] != nil, "a root after the cursor's key was not planned")
                #expect(manifest[before] == nil, "a root before the cursor's key was planned")
                #expect(manifest[behind] == nil, "a root moved behind the cursor was planned")
                let remaining = try Self.current("app.adv_events", where: "true", fixture)
                #expect(remaining[moved] != nil, "a root changed after it was planned was deleted")
                #expect(remaining[behind] != nil)
                #expect(remaining[before] != nil)
                // Nothing young (n = 2) went: the lengthened policy spares what it no longer allows.
                let young: Int = try fixture.connection.scalar(
                    "SELECT count(*)::int FROM app.adv_events WHERE account_id = 1 AND n = 2")
                #expect(young == Self.tags.count)
                let gone: Int = try fixture.connection.scalar(
                    "SELECT count(*)::int FROM app.adv_events WHERE account_id = 1 AND n IN (1, 10, -3)")
                #expect(gone == 2, "every other old root is deleted: only the moved and the behind one remain")
                let others: Int = try fixture.connection.scalar(
                    "SELECT count(*)::int FROM app.adv_events WHERE account_id = 2")
                #expect(others == Self.tags.count * 4)
                #expect(try fixture.gone(account: 2).isEmpty)
            }
        }
    }
}
