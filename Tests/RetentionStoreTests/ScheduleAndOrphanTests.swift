import Foundation
import Postgres
import Retention
import TestSupport
import Testing

@testable import Store

/// The leader's set-based scheduling, notices, and orphan blob GC.
@Suite struct ScheduleAndOrphanTests {
    let schedule = RetentionSchedule(orphanInterval: .seconds(86_400), maxAttempts: 5)

    func tasks(_ connection: Connection) throws -> [String] {
        try connection.query(
            "SELECT kind || ':' || account_id || ':' || entity_type FROM lethe.tasks ORDER BY 1"
        ).map { try $0.decode(String.self, at: 0) }
    }

    @Test func enqueuesOneTaskPerRunnablePairAndAdvancesTheCheck() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try Fixture.prepare(connection)
            try connection.execute("SELECT lethe.add_account('1'), lethe.add_account('2'), lethe.add_account('3')")
            try connection.execute("SELECT lethe.set_account_state('2', 'suspended')")
            try connection.execute("SELECT lethe.operator_set_policy_disabled('3', 'documents', true, 'x')")
            let (checked, enqueued) = try schedule.enqueueDue(on: connection)
            // 3 accounts × (3 types + 1 blob store) checked; staff is keep-only, 2 is suspended.
            #expect(checked == 12)
            #expect(
                try tasks(connection) == [
                    "orphan_gc:1:blobs", "orphan_gc:3:blobs", "retention:1:conversations", "retention:1:documents",
                    "retention:3:conversations",
                ])
            #expect(enqueued == 5)
            // Nothing is due again until the check interval passes, so a second tick is a no-op.
            #expect(try schedule.enqueueDue(on: connection) == (0, 0))
            let last: Date? = try connection.scalar(
                "SELECT last_checked_at FROM lethe.retention_runs WHERE account_id = '2' AND subject = 'conversations'")
            #expect(last != nil)  // blocked pairs are checked (and shown), not silently skipped

            // Reactivating brings the suspended account's checks forward.
            try connection.execute("SELECT lethe.set_account_state('2', 'active')")
            #expect(try schedule.enqueueDue(on: connection).enqueued == 3)
            // An unfinished task is never enqueued twice.
            try connection.execute("UPDATE lethe.retention_runs SET next_run_at = now()")
            #expect(try schedule.enqueueDue(on: connection).enqueued == 0)
            #expect(try connection.scalar("SELECT count(*) FROM lethe.tasks", as: Int.self) == 8)
        }
    }

    @Test func lanesEnqueueSeveralTasksThatShareOneBacklog() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            var registry = Fixture.registry(batchSize: 3)
            registry.entityTypes[0].lanes = 3
            let compiled = try Fixture.prepare(connection, registry: registry)
            try connection.execute("SELECT lethe.add_account('1')")
            #expect(try schedule.enqueueDue(on: connection).enqueued == 3 + 1 + 1)
            let lanes = try connection.query(
                "SELECT lane FROM lethe.tasks WHERE entity_type = 'conversations' ORDER BY lane"
            ).map { try $0.decode(Int.self, at: 0) }
            #expect(lanes == [0, 1, 2])
            // Enqueueing again while they are unfinished adds nothing.
            try connection.execute("UPDATE lethe.retention_runs SET next_run_at = now()")
            #expect(try schedule.enqueueDue(on: connection).enqueued == 0)
            // Lanes take disjoint batches: one lane's locked roots are skipped by another.
            for id in 1...9 {
                try Fixture.conversation(connection, id: Int64(id), account: 1, endedDaysAgo: 40, messages: 1)
            }
            let other = try database.connect()
            defer { other.close() }
            let type = compiled.entityTypes["conversations"]!
            try other.execute("BEGIN")
            let held = try other.query(type.selectRoots, ["1", "infinity", 3]).map { try $0.decode(String.self, at: 0) }
            let result = try RetentionBatch(type: type, registry: compiled).run(
                account: "1", task: nil, worker: nil, on: connection)
            try other.execute("ROLLBACK")
            #expect(held == ["1", "2", "3"])
            #expect(result.roots == 3)
            #expect(try connection.scalar("SELECT count(*) FROM app.conv WHERE id IN (1, 2, 3)", as: Int.self) == 3)
        }
    }

    @Test func upcomingDeletionsAreAnnouncedOncePerDay() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            try Fixture.prepare(connection)
            try connection.execute("SELECT lethe.add_account('1'), lethe.add_account('2', NULL, 'never')")
            // Due in about 3 and 5 days (30-day interval), and one already expired.
            try Fixture.conversation(connection, id: 1, account: 1, endedDaysAgo: 27)
            try Fixture.conversation(connection, id: 2, account: 1, endedDaysAgo: 25)
            try Fixture.conversation(connection, id: 3, account: 1, endedDaysAgo: 10)
            try Fixture.conversation(connection, id: 4, account: 2, endedDaysAgo: 27)
            let listener = try database.connect()
            defer { listener.close() }
            try listener.execute("LISTEN \(RetentionSchedule.noticeChannel)")

            let (rows, earliest) = try connection.query(
                "SELECT rows, earliest_at FROM lethe.upcoming_deletions WHERE account_id = '1' AND entity_type = 'conversations'"
            )[0].decode((Int, Date).self)
            #expect(rows == 2)
            #expect(abs(earliest.timeIntervalSinceNow - 3 * 86_400) < 60)
            #expect(
                try connection.scalar(
                    "SELECT count(*) FROM lethe.upcoming_deletions WHERE account_id = '2'", as: Int.self) == 0)

            #expect(try schedule.announceUpcoming(on: connection) == 1)
            #expect(try schedule.announceUpcoming(on: connection) == 0)
            let note = try listener.waitForNotification(timeout: .seconds(5))
            #expect(note?.payload.contains(#""account_id" : "1""#) == true)
            #expect(try connection.scalar("SELECT count(*) FROM lethe.notices", as: Int.self) == 1)

            // The backlog view: nothing expired yet for account 1; an expired row shows with its age.
            try Fixture.conversation(connection, id: 5, account: 1, endedDaysAgo: 45)
            let (expired, behind) = try connection.query(
                """
                SELECT expired_rows, extract(epoch FROM behind_by)::float8 FROM lethe.retention_backlog
                WHERE account_id = '1' AND entity_type = 'conversations'
                """
            )[0].decode((Int, Double).self)
            #expect(expired == 1)
            #expect(abs(behind - 15 * 86_400) < 120)
        }
    }

    @Test func orphanGCRespectsGraceAndTheCapPerRun() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            let registry = try Fixture.prepare(
                connection, registry: Fixture.registry(grace: .milliseconds(1500), cap: 25))
            try connection.execute("SELECT lethe.add_account('1'), lethe.add_account('2')")
            try Fixture.conversation(connection, id: 1, account: 1, endedDaysAgo: 1)  // 3 referenced blobs
            try connection.executeScript(
                """
                INSERT INTO app.blobs (id, account_id) SELECT 900000 + g, 1 FROM generate_series(1, 40) g;
                INSERT INTO app.blobs (id, account_id) SELECT 800000 + g, 2 FROM generate_series(1, 5) g;
                """)
            let collector = OrphanCollector(store: registry.blobStores["blobs"]!)
            #expect(try collector.mark(account: "1", on: connection) == (40, 0))
            // Within the grace nothing goes.
            #expect(
                try collector.collectBatch(account: "1", limit: 10, task: nil, worker: nil, on: connection) == (0, 0))
            // One becomes referenced again: forgotten, so its grace restarts.
            try connection.execute("UPDATE app.conv SET rec = 900001 WHERE id = 1")
            // Blob 900001 is forgotten; the old recording 100 is now the orphan.
            #expect(try collector.mark(account: "1", on: connection) == (1, 1))
            usleep(1_600_000)
            var deleted = 0
            while deleted < 25 {
                let (gone, taken) = try collector.collectBatch(
                    account: "1", limit: min(10, 25 - deleted), task: nil, worker: nil, on: connection)
                deleted += gone
                if taken == 0 { break }
            }
            #expect(deleted == 25)
            #expect(
                try connection.scalar(
                    "SELECT count(*) FROM app.blobs WHERE account_id = 1 AND id > 900000", as: Int.self) == 15)
            #expect(try connection.scalar("SELECT count(*) FROM app.blobs WHERE id = 900001", as: Int.self) == 1)
            // Other accounts' orphans are not this task's business.
            #expect(try connection.scalar("SELECT count(*) FROM app.blobs WHERE account_id = 2", as: Int.self) == 5)
            // A hold on the account stops orphan GC too.
            try connection.execute("SELECT lethe.place_hold('1', NULL, 'legal')")
            #expect(throws: OrphanCollectionBlocked.self) {
                try collector.collectBatch(account: "1", limit: 10, task: nil, worker: nil, on: connection)
            }
        }
    }
}
