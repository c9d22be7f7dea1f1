import Foundation
import Postgres
import Retention
import Store
import TestSupport
import Testing

/// Bounds, defaults, tiers, account states and the operator/tenant split, through the SQL
/// functions applications and `lethe account|policy` call.
@Suite struct PolicyTests {
    func effective(_ connection: Connection, _ account: String, _ type: String) throws -> String? {
        try connection.scalar(
            "SELECT effective_interval::text FROM lethe.retention_status WHERE account_id = $1 AND entity_type = $2",
            [account, type])
    }

    @Test func aboveMaximumIsRejectedBelowMinimumIsRaised() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try Fixture.prepare(connection)
            try connection.execute("SELECT lethe.add_account('1')")
            let error = #expect(throws: PostgresError.self) {
                try connection.execute("SELECT lethe.set_policy('1', 'conversations', '2 years')")
            }
            #expect(error?.message == "interval 2 years for conversations is above the maximum 1 year")
            #expect(try effective(connection, "1", "conversations") == "30 days")  // unchanged

            let (value, raised) = try connection.query(
                "SELECT effective::text, raised_to_minimum FROM lethe.set_policy('1', 'conversations', '2 hours')"
            )[0].decode((String, Bool).self)
            #expect(value == "1 day" && raised)
            #expect(try effective(connection, "1", "conversations") == "1 day")

            let within = try connection.query(
                "SELECT effective::text, raised_to_minimum FROM lethe.set_policy('1', 'conversations', '6 mons')"
            )[0].decode((String, Bool).self)
            #expect(within == ("6 mons", false))
        }
    }

    @Test func accountsKeepTheDefaultsInForceWhenTheyWereAdded() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try Fixture.prepare(connection)
            try connection.execute("SELECT lethe.add_account('10')")
            // The operator changes the default later: the existing account keeps its interval.
            var registry = Fixture.registry()
            registry.entityTypes[0].bounds = Fixture.bounds("90d", "1d", "1y")
            try Fixture.compile(connection, registry: registry)
            try connection.execute("SELECT lethe.add_account('11')")
            #expect(try effective(connection, "10", "conversations") == "30 days")
            #expect(try effective(connection, "11", "conversations") == "90 days")
        }
    }

    @Test func tiersApplyAndAnAccountsOwnSettingOverridesThem() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try Fixture.prepare(connection)
            try connection.execute("SELECT lethe.define_tier('gold', 'keeps a year')")
            try connection.execute("SELECT lethe.set_tier_interval('gold', 'conversations', '1 year')")
            try connection.execute("SELECT lethe.add_account('21', 'gold')")
            try connection.execute("SELECT lethe.add_account('22', 'gold')")
            try connection.execute("SELECT lethe.add_account('23')")
            #expect(try connection.scalar("SELECT lethe.assign_tier('gold', ARRAY['23'])", as: Int.self) == 1)
            try connection.execute("SELECT lethe.set_policy('22', 'conversations', '60 days')")
            #expect(try effective(connection, "21", "conversations") == "1 year")
            #expect(try effective(connection, "22", "conversations") == "60 days")
            // c was added without a tier, so it kept its own defaults, which win over the tier.
            #expect(try effective(connection, "23", "conversations") == "30 days")
            let source: String = try connection.scalar(
                "SELECT interval_source FROM lethe.retention_status WHERE account_id = '21' AND entity_type = 'conversations'"
            )
            #expect(source == "tier")
            // A tier with no interval for a type leaves tier-only accounts with no policy: shown, not skipped.
            let (runnable, reason) = try connection.query(
                "SELECT runnable, blocked_reason FROM lethe.retention_status WHERE account_id = '21' AND entity_type = 'documents'"
            )[0].decode((Bool, String?).self)
            #expect(!runnable && reason == "no policy: no own interval and no tier interval")
            // Tier intervals obey the same bounds.
            #expect(throws: PostgresError.self) {
                try connection.execute("SELECT lethe.set_tier_interval('gold', 'documents', '5 years')")
            }
        }
    }

    @Test func suspendedAndDeletedAccountsAreBlockedAndShownWhy() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try Fixture.prepare(connection)
            try connection.execute("SELECT lethe.add_account('1')")
            try connection.execute("SELECT lethe.set_account_state('1', 'suspended')")
            let reason: String? = try connection.scalar(
                "SELECT blocked_reason FROM lethe.retention_status WHERE account_id = '1' AND entity_type = 'conversations'"
            )
            #expect(reason == "account suspended")
            #expect(throws: PostgresError.self) {
                try connection.execute("SELECT lethe.set_account_state('1', 'gone')")
            }
            try connection.execute("SELECT lethe.set_account_state('1', 'deleted')")
            #expect(
                try connection.scalar(
                    "SELECT blocked_reason FROM lethe.retention_status WHERE account_id = '1' AND entity_type = 'conversations'",
                    as: String?.self) == "account deleted")
            // An account id that does not fit the application's bigint account column is refused.
            let error = #expect(throws: PostgresError.self) {
                try connection.execute("SELECT lethe.add_account('acme')")
            }
            #expect(error?.message.contains("not a valid bigint") == true)
        }
    }

    @Test func operatorDisableSticksAgainstTheTenantAdmin() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try Fixture.prepare(connection)
            try connection.execute("SELECT lethe.add_account('1'), lethe.add_account('2')")
            try connection.execute(
                "SELECT lethe.operator_set_policy_disabled('1', 'conversations', true, 'legal review')")
            try connection.execute("SELECT lethe.operator_set_retention_disabled('2', true, 'unpaid')")

            // What the application does on behalf of a tenant admin.
            try connection.execute("SET ROLE lethe_tenant_admin")
            let refused = #expect(throws: PostgresError.self) {
                try connection.execute("SELECT lethe.set_policy_enabled('1', 'conversations', true)")
            }
            #expect(refused?.sqlState == .insufficientPrivilege)
            #expect(refused?.message.contains("only an operator can re-enable it") == true)
            #expect(throws: PostgresError.self) {
                try connection.execute("SELECT lethe.set_policy_enabled('2', 'documents', true)")
            }
            // The tenant may still choose intervals and switch its own policies off.
            try connection.execute("SELECT lethe.set_policy('1', 'documents', '14 days')")
            try connection.execute("SELECT lethe.set_policy_enabled('1', 'documents', false)")
            // Operator functions are not the tenant admin's to call.
            for call in [
                "SELECT lethe.operator_set_policy_disabled('1', 'conversations', false)",
                "SELECT lethe.operator_set_retention_disabled('2', false)", "SELECT lethe.add_account('3')",
                "SELECT lethe.place_hold('1', NULL, 'x')",
            ] {
                let denied = #expect(throws: PostgresError.self) { try connection.execute(call) }
                #expect(denied?.sqlState == .insufficientPrivilege, "\(call)")
            }
            try connection.execute("RESET ROLE")

            let rows = try connection.query(
                """
                SELECT account_id, entity_type, runnable, coalesce(blocked_reason, '') FROM lethe.retention_status
                WHERE entity_type IN ('conversations', 'documents') ORDER BY 1, 2
                """
            ).map { try $0.decode((String, String, Bool, String).self) }
            #expect(rows.map(\.2) == [false, false, false, false])
            #expect(rows[0].3 == "policy disabled by an operator")
            #expect(rows[1].3 == "policy disabled by the tenant")
            #expect(rows[2].3 == "retention disabled for the account by an operator")
            // The operator can re-enable.
            try connection.execute("SELECT lethe.operator_set_policy_disabled('1', 'conversations', false)")
            #expect(
                try connection.scalar(
                    "SELECT runnable FROM lethe.retention_status WHERE account_id = '1' AND entity_type = 'conversations'",
                    as: Bool.self))
        }
    }

    @Test func calendarCutoffsAcrossMonthEndsAndLeapDays() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            // A session in another time zone must not change the calendar arithmetic.
            try connection.execute("SET TimeZone = 'America/New_York'")
            let cases: [(String, String, String)] = [
                ("2024-03-31 12:00:00+00", "1mo", "2024-02-29 12:00:00+00"),
                ("2025-03-31 12:00:00+00", "1mo", "2025-02-28 12:00:00+00"),
                ("2024-02-29 00:30:00+00", "1y", "2023-02-28 00:30:00+00"),
                ("2028-02-29 23:59:00+00", "4y", "2024-02-29 23:59:00+00"),
                ("2026-01-31 00:00:00+00", "6mo", "2025-07-31 00:00:00+00"),
                ("2026-05-31 00:00:00+00", "3mo", "2026-02-28 00:00:00+00"),
                ("2026-03-29 02:30:00+00", "1d", "2026-03-28 02:30:00+00"),
                ("2026-03-01 00:00:00+00", "1mo1d", "2026-01-31 00:00:00+00"),
            ]
            for (at, keep, expected) in cases {
                let interval = RetentionInterval.parse(keep)!
                let cutoff: Date = try connection.scalar(
                    "SELECT lethe.cutoff($1::timestamptz, $2::interval)", [at, interval.postgresText])
                let wanted: Date = try connection.scalar("SELECT $1::timestamptz", [expected])
                #expect(cutoff == wanted, "\(at) - \(keep)")
                // The pure model agrees.
                let now: Date = try connection.scalar("SELECT $1::timestamptz", [at])
                #expect(interval.cutoff(before: now) == wanted, "model: \(at) - \(keep)")
            }
        }
    }
}
