import Foundation
import Postgres
import Retention
import Store
import TestSupport
import Testing

/// Intervals, cutoffs, account ids and the two policy switches, attacked the way a tenant
/// admin, an operator with psql or a later registry change could.
@Suite struct PolicySafetyTests {
    func status(_ connection: Connection, _ account: String, _ type: String) throws -> (Bool, String?, Date?) {
        try connection.query(
            "SELECT runnable, blocked_reason, cutoff FROM lethe.retention_status WHERE account_id = $1 AND entity_type = $2",
            [account, type]
        )[0].decode((Bool, String?, Date?).self)
    }

    /// Migration 0009 rewrote `lethe.interval_is_positive` (inlinable, `date_part` instead of
    /// `extract`, no STRICT) for the backlog's speed. It decides every cutoff: it must give
    /// exactly what 0006's definition gave, NULL included, on every kind of interval (mixed
    /// signs, months against days, sub-second negatives, the extremes of each field).
    @Test func theRewrittenIntervalCheckAgreesWithTheOriginalEverywhere() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(
                """
                CREATE FUNCTION pg_temp.original_is_positive(keep interval) RETURNS boolean
                LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
                RETURN keep > interval '0'
                   AND extract(year FROM keep) >= 0 AND extract(month FROM keep) >= 0 AND extract(day FROM keep) >= 0
                   AND extract(hour FROM keep) >= 0 AND extract(minute FROM keep) >= 0
                   AND extract(microseconds FROM keep) >= 0;
                CREATE TEMP TABLE parts(v bigint);
                INSERT INTO parts VALUES (0), (1), (-1), (11), (-11), (12), (-12), (13), (29), (30), (31), (-30),
                    (1200), (-1200), (36031), (-36031), (2147483647), (-2147483648);
                CREATE TEMP TABLE times(v bigint);
                INSERT INTO times VALUES (0), (1), (-1), (999999), (-999999), (1000000), (-1000000), (59999999),
                    (-60000000), (3599999999), (-3600000000), (86400000000), (-86400000000),
                    (9007199254740993), (-9007199254740993), (9223372036854775807), (-9223372036854775807);
                CREATE TEMP TABLE samples AS
                SELECT make_interval(months => m.v::int, days => d.v::int) + make_interval(secs => 0)
                       + (t.v::text || ' microseconds')::interval AS i
                FROM parts m, parts d, times t;
                INSERT INTO samples
                SELECT make_interval(months => (random() * 200 - 100)::int, days => (random() * 2000 - 1000)::int)
                       + ((random() * 2e12 - 1e12)::bigint::text || ' microseconds')::interval
                FROM generate_series(1, 20000);
                INSERT INTO samples VALUES (NULL), ('-0 seconds'), ('-0.000001 s'), ('1 mon -30 days'),
                    ('1 day -24 hours'), ('-1 mon 31 days'), ('-1 year 13 mons');
                """)
            let (total, differ, positive): (Int, Int, Int) = try connection.query(
                """
                SELECT count(*)::int8,
                       count(*) FILTER (WHERE pg_temp.original_is_positive(i)
                                        IS DISTINCT FROM lethe.interval_is_positive(i))::int8,
                       count(*) FILTER (WHERE lethe.interval_is_positive(i))::int8
                FROM pg_temp.samples
                """)[0].decode((Int, Int, Int).self)
            #expect(total > 20_000 && positive > 100)
            #expect(differ == 0, "\(differ) of \(total) intervals judged differently")
            let nullGivesNull: Bool = try connection.scalar("SELECT lethe.interval_is_positive(NULL) IS NULL")
            #expect(nullGivesNull)
        }
    }

    @Test func mixedSignAndNonPositiveIntervalsAreRefused() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try Fixture.prepare(connection)
            try connection.execute("SELECT lethe.add_account('2')")
            try connection.execute("SELECT lethe.define_tier('gold')")

            // What the application does on behalf of a tenant admin.
            try connection.execute("SET ROLE lethe_tenant_admin")
            let mixed = #expect(throws: PostgresError.self) {
                try connection.execute("SELECT * FROM lethe.set_policy('2', 'conversations', '-1200 mons 36031 days')")
            }
            #expect(mixed?.sqlState?.rawValue == "22023")
            #expect(
                mixed?.message
                    == "interval -100 years +36031 days for conversations is not allowed; expected a positive interval "
                    + "with no negative part, between 1 day and 1 year")
            for refused in ["-30 days", "0", "1 day -00:00:01", "-1 mons +40 days", "1 year -1 days"] {
                let error = #expect(throws: PostgresError.self, "\(refused)") {
                    try connection.execute("SELECT * FROM lethe.set_policy('2', 'conversations', $1)", [refused])
                }
                #expect(error?.sqlState?.rawValue == "22023", "\(refused)")
            }
            try connection.execute("RESET ROLE")
            let tier = #expect(throws: PostgresError.self) {
                try connection.execute(
                    "SELECT * FROM lethe.set_tier_interval('gold', 'conversations', '-1 mons 40 days')")
            }
            #expect(tier?.sqlState?.rawValue == "22023")

            // Nothing was stored: the account keeps its default and a cutoff in the past.
            let (runnable, _, cutoff) = try status(connection, "2", "conversations")
            #expect(runnable)
            #expect(try #require(cutoff) < Date().addingTimeInterval(-29 * 86_400))

            // Writing the tables directly cannot bypass the functions.
            for sql in [
                "UPDATE lethe.policies SET retention = '-1200 mons 36031 days' WHERE account_id = '2'",
                "INSERT INTO lethe.tier_intervals VALUES ('gold', 'conversations', '-1 mons 40 days')",
                "UPDATE lethe.entity_types SET min_interval = '-1 mons 32 days' WHERE name = 'conversations'",
            ] {
                let error = #expect(throws: PostgresError.self, "\(sql)") { try connection.execute(sql) }
                #expect(error?.sqlState == .checkViolation, "\(sql)")
            }
            try connection.execute("DELETE FROM lethe.policies WHERE account_id = '2' AND entity_type = 'documents'")
            let insert = #expect(throws: PostgresError.self) {
                try connection.execute(
                    "INSERT INTO lethe.policies (account_id, entity_type, retention) VALUES ('2', 'documents', '-1200 mons 36031 days')"
                )
            }
            #expect(insert?.sqlState == .checkViolation)
        }
    }

    @Test func boundsCompareCutoffsNotIntervalValues() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            var registry = Fixture.registry()
            registry.entityTypes[0].bounds = Fixture.bounds("1y", "1y", "2y")
            try Fixture.prepare(connection, registry: registry)
            try connection.execute("SELECT lethe.add_account('1')")
            // 360 days compares equal to 1 year (12 × 30 days) but cuts off 5 or 6 days later.
            let (value, raised) = try connection.query(
                "SELECT effective::text, raised_to_minimum FROM lethe.set_policy('1', 'conversations', '360 days')"
            )[0].decode((String, Bool).self)
            #expect(value == "1 year" && raised)
            // 735 days compares above 2 years (720 days) but cuts off no earlier than 2 years: accepted.
            let (longest, _) = try connection.query(
                "SELECT effective::text, raised_to_minimum FROM lethe.set_policy('1', 'conversations', '730 days')"
            )[0].decode((String, Bool).self)
            #expect(longest == "730 days")
            let above = #expect(throws: PostgresError.self) {
                try connection.execute("SELECT lethe.set_policy('1', 'conversations', '2 years 3 days')")
            }
            #expect(above?.message == "interval 2 years 3 days for conversations is above the maximum 2 years")
        }
    }

    @Test func theIntervalInForceIsClampedByCutoffsNotValues() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            var registry = Fixture.registry()
            registry.entityTypes[0].bounds = Fixture.bounds("2y", "364d", "3y")
            try Fixture.prepare(connection, registry: registry)
            try connection.execute("SELECT lethe.add_account('1')")
            // 1 year compares as 360 days, below the 364-day minimum, yet it keeps rows longer:
            // the tenant's year stays in force (a value clamp made it 364 days, a day too early).
            try connection.execute("SELECT lethe.set_policy('1', 'conversations', '1 year')")
            let (effective, exact) = try connection.query(
                """
                SELECT effective_interval::text, cutoff = lethe.cutoff(now(), interval '1 year')
                FROM lethe.retention_status WHERE account_id = '1' AND entity_type = 'conversations'
                """)[0].decode((String, Bool).self)
            #expect(effective == "1 year" && exact)
        }
    }

    @Test func aCutoffIsNeverLaterThanNowMinusTheTypesMinimum() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            let registry = try Fixture.prepare(connection)
            let conversations = registry.entityTypes["conversations"]!
            try connection.execute("SELECT lethe.add_account('1')")
            try connection.execute("SELECT lethe.set_policy('1', 'conversations', '360 days')")
            // 362 days old: expired under 360 days, not under a year.
            try Fixture.conversation(connection, id: 1, account: 1, endedDaysAgo: 362)
            // The operator raises the minimum to a year (which compares equal to 360 days).
            var raised = Fixture.registry()
            raised.entityTypes[0].bounds = Fixture.bounds("1y", "1y", "2y")
            try Fixture.compile(connection, registry: raised)

            let later: Bool = try connection.scalar(
                """
                SELECT cutoff > lethe.cutoff(now(), interval '1 year') FROM lethe.retention_status
                WHERE account_id = '1' AND entity_type = 'conversations'
                """)
            #expect(!later, "retention_status gives a cutoff later than now - 1 year")
            let preview = try RetentionPreview.compute(conversations, account: "1", on: connection)
            #expect(preview.rows.map(\.count) == [0, 0, 0])
            _ = try Fixture.drain(conversations, registry: registry, account: "1", on: connection)
            #expect(try connection.scalar("SELECT count(*) FROM app.conv", as: Int.self) == 1)

            // A stored interval that is not positive (left from before the constraint) yields
            // no cutoff at all: blocked, and the reason says so.
            try connection.execute(
                "ALTER TABLE lethe.policies DROP CONSTRAINT policies_retention_positive"
            )
            try connection.execute(
                "UPDATE lethe.policies SET retention = '-1200 mons 36031 days' WHERE account_id = '1' AND entity_type = 'conversations'"
            )
            let (runnable, reason, cutoff) = try status(connection, "1", "conversations")
            #expect(!runnable && cutoff == nil)
            #expect(reason?.hasPrefix("interval -100 years +36031 days (account)") == true, "\(reason ?? "-")")
            #expect(
                try Fixture.drain(conversations, registry: registry, account: "1", on: connection).map(\.status)
                    == [.blocked(reason!)])
            #expect(try connection.scalar("SELECT count(*) FROM app.conv", as: Int.self) == 1)
        }
    }

    @Test func accountIdsMustBeTheCanonicalTextOfTheAccountColumn() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try Fixture.prepare(connection)  // bigint account columns
            try connection.execute("SELECT lethe.add_account('1')")
            for (id, canonical) in [("01", "1"), (" 1", "1"), ("+1", "1"), ("1 ", "1"), ("007", "7")] {
                let error = #expect(throws: PostgresError.self, "\(id)") {
                    try connection.execute("SELECT lethe.add_account($1)", [id])
                }
                #expect(error?.sqlState?.rawValue == "22023", "\(id)")
                #expect(
                    error?.message
                        == "account id \"\(id)\" is not written as bigint writes it (the type of the application's "
                        + "account columns): did you mean \"\(canonical)\"?")
            }
            // Not through the table either.
            let direct = #expect(throws: PostgresError.self) {
                try connection.execute("INSERT INTO lethe.accounts (account_id) VALUES ('01')")
            }
            #expect(direct?.sqlState?.rawValue == "22023")
            #expect(throws: PostgresError.self) {
                try connection.execute("UPDATE lethe.accounts SET account_id = '+1' WHERE account_id = '1'")
            }
            #expect(
                try connection.scalar("SELECT array_agg(account_id)::text FROM lethe.accounts", as: String.self)
                    == "{1}")
        }
    }

    @Test(arguments: [
        ("uuid", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ("uuid", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ("varchar(8)", "tenant-0001", "tenant-0"),
    ])
    func accountIdsOfOtherTypes(type: String, refused: String, canonical: String) async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try connection.executeScript(
                TestSchema.sql.replacingOccurrences(of: "account_id bigint", with: "account_id \(type)"))
            try Fixture.compile(connection, registry: Fixture.registry())
            try connection.execute("SELECT lethe.add_account($1)", [canonical])
            let error = #expect(throws: PostgresError.self) {
                try connection.execute("SELECT lethe.add_account($1)", [refused])
            }
            #expect(error?.sqlState?.rawValue == "22023")
            let message = error?.message ?? ""
            #expect(message.contains("account id \"\(refused)\""))
            if type == "uuid" {
                #expect(message.hasSuffix("did you mean \"\(canonical)\"?"), "\(message)")
            } else {
                #expect(message.contains("is longer than character varying(8) allows (8 characters at most)"))
            }
            #expect(try connection.scalar("SELECT count(*) FROM lethe.accounts", as: Int.self) == 1)
        }
    }

    @Test func anOperatorsReEnableLeavesTheTenantsOffAlone() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try Fixture.prepare(connection)
            try connection.execute("SELECT lethe.add_account('1')")
            try connection.execute("SET ROLE lethe_tenant_admin")
            try connection.execute("SELECT lethe.set_policy_enabled('1', 'conversations', false)")
            try connection.execute("RESET ROLE")
            try connection.execute("SELECT lethe.operator_set_policy_disabled('1', 'conversations', true, 'review')")
            #expect(try status(connection, "1", "conversations").1 == "policy disabled by an operator")
            try connection.execute("SELECT lethe.operator_set_policy_disabled('1', 'conversations', false)")
            let (runnable, reason, _) = try status(connection, "1", "conversations")
            #expect(!runnable)
            #expect(reason == "policy disabled by the tenant")
            // The tenant's own switch turns it back on.
            try connection.execute("SELECT lethe.set_policy_enabled('1', 'conversations', true)")
            #expect(try status(connection, "1", "conversations").0)
        }
    }
}
