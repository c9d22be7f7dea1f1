import Foundation
import Postgres
import Retention
import Store
import TestSupport
import Testing

/// The retention batch against a real schema: cascades, blobs, guards, versions,
/// keep-only types, holds, idempotence and concurrency.
@Suite struct BatchTests {
    func ids(_ connection: Connection, _ sql: String) throws -> [Int64] {
        try connection.query(sql).map { try $0.decode(Int64.self, at: 0) }
    }

    @Test func deletesExpiredRootsWithChildrenAndSoleOwnedBlobsOnly() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            let registry = try Fixture.prepare(connection, registry: Fixture.registry(batchSize: 2))
            try connection.execute("SELECT lethe.add_account('1'), lethe.add_account('2')")
            // Account 1: 40 and 35 days old go (30d); 10 days old and open stay; an open-status row stays.
            try Fixture.conversation(connection, id: 1, account: 1, endedDaysAgo: 40)
            try Fixture.conversation(connection, id: 2, account: 1, endedDaysAgo: 35)
            try Fixture.conversation(connection, id: 3, account: 1, endedDaysAgo: 10)
            try Fixture.conversation(connection, id: 4, account: 1, endedDaysAgo: nil)
            try Fixture.conversation(connection, id: 5, account: 1, endedDaysAgo: 50, status: "open")
            try Fixture.conversation(connection, id: 6, account: 1, endedDaysAgo: 31)
            // Account 2: just as old, but a different account.
            try Fixture.conversation(connection, id: 7, account: 2, endedDaysAgo: 40)
            // A blob shared with a surviving conversation must survive.
            try connection.execute("UPDATE app.conv SET rec = 100 WHERE id = 3")

            let results = try Fixture.drain(
                registry.entityTypes["conversations"]!, registry: registry, account: "1", on: connection)
            #expect(results.map(\.roots) == [2, 1])
            #expect(try ids(connection, "SELECT id FROM app.conv ORDER BY id") == [3, 4, 5, 7])
            #expect(
                try ids(connection, "SELECT id FROM app.msg ORDER BY id") == [301, 302, 401, 402, 501, 502, 701, 702])
            #expect(
                try ids(connection, "SELECT id FROM app.att ORDER BY id") == [301, 302, 401, 402, 501, 502, 701, 702])
            // Blobs: 100 is still referenced by conversation 3; 200, 600 and the attachments of 1, 2, 6 are gone.
            #expect(
                try ids(connection, "SELECT id FROM app.blobs ORDER BY id")
                    == [
                        100, 300, 400, 500, 700, 301_000, 302_000, 401_000, 402_000, 501_000, 502_000, 701_000, 702_000,
                    ])
            let logged = try connection.query(
                "SELECT sum(root_rows)::int, sum(total_rows)::int, sum(blob_rows)::int FROM lethe.deletion_log WHERE account_id = '1'"
            )[0].decode((Int, Int, Int).self)
            #expect(logged == (3, 3 + 6 + 6, 2 + 6))
            let perTable: String = try connection.scalar(
                "SELECT rows_by_table::text FROM lethe.deletion_log ORDER BY id LIMIT 1")
            #expect(perTable == #"{"app.att": 4, "app.msg": 4, "app.conv": 2}"#)

            // A second run deletes nothing.
            let again = try Fixture.drain(
                registry.entityTypes["conversations"]!, registry: registry, account: "1", on: connection)
            #expect(again.map(\.totalRows) == [0])
            #expect(try connection.scalar("SELECT count(*) FROM lethe.deletion_records", as: Int.self) == 2)
        }
    }

    @Test func versionsKeepTheNewestWhateverTheirAge() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            let registry = try Fixture.prepare(connection)
            try connection.execute("SELECT lethe.add_account('1')")
            // Item 1: five versions 100..60 days old; item 2: one 90 days old; item 3: two recent, one old.
            try connection.execute(
                """
                INSERT INTO app.docs VALUES
                  (11, 1, 1, now() - interval '100 days'), (12, 1, 1, now() - interval '90 days'),
                  (13, 1, 1, now() - interval '80 days'), (14, 1, 1, now() - interval '70 days'),
                  (15, 1, 1, now() - interval '60 days'),
                  (21, 1, 2, now() - interval '90 days'),
                  (31, 1, 3, now() - interval '50 days'), (32, 1, 3, now() - interval '2 days'),
                  (33, 1, 3, now() - interval '1 day')
                """)
            _ = try Fixture.drain(registry.entityTypes["documents"]!, registry: registry, account: "1", on: connection)
            #expect(try ids(connection, "SELECT id FROM app.docs ORDER BY id") == [14, 15, 21, 32, 33])
        }
    }

    @Test func keepOnlyTypesAreNeverDeleted() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            let registry = try Fixture.prepare(connection)
            try connection.execute("SELECT lethe.add_account('1')")
            try connection.execute("INSERT INTO app.staff VALUES (1, 1, now() - interval '3 years')")
            let results = try Fixture.drain(
                registry.entityTypes["staff"]!, registry: registry, account: "1", on: connection)
            #expect(results.map(\.status) == [.blocked("keep-only type: never deleted")])
            #expect(try connection.scalar("SELECT count(*) FROM app.staff", as: Int.self) == 1)
        }
    }

    @Test func holdsStopDeletionUntilReleased() async throws {
        try await withMigratedDatabase { database in
            let connection = try database.connect()
            defer { connection.close() }
            let registry = try Fixture.prepare(connection)
            let conversations = registry.entityTypes["conversations"]!
            try connection.execute("SELECT lethe.add_account('1')")
            try Fixture.conversation(connection, id: 1, account: 1, endedDaysAgo: 40)
            let hold: Int64 = try connection.scalar("SELECT lethe.place_hold('1', NULL, 'litigation')")
            #expect(
                try Fixture.drain(conversations, registry: registry, account: "1", on: connection).map(\.status)
                    == [.held("litigation")])
            // A hold on another type does not stop this one; a hold on this type does.
            try connection.execute("SELECT lethe.release_hold($1)", [hold])
            try connection.execute("SELECT lethe.place_hold('1', 'documents', 'audit')")
            let typeHold: Int64 = try connection.scalar("SELECT lethe.place_hold('1', 'conversations', 'audit')")
            #expect(
                try Fixture.drain(conversations, registry: registry, account: "1", on: connection).map(\.status)
                    == [.held("audit")])
            #expect(try connection.scalar("SELECT count(*) FROM app.conv", as: Int.self) == 1)
            try connection.execute("SELECT lethe.release_hold($1)", [typeHold])
            _ = try Fixture.drain(conversations, registry: registry, account: "1", on: connection)
            #expect(try connection.scalar("SELECT count(*) FROM app.conv", as: Int.self) == 0)
            // An expired hold no longer holds.
            try Fixture.conversation(connection, id: 2, account: 1, endedDaysAgo: 40)
            try connection.execute("SELECT lethe.place_hold('1', NULL, 'short', now() + interval '1 second')")
            #expect(
                try Fixture.drain(conversations, registry: registry, account: "1", on: connection)[0].status
                    == .held("short"))
            usleep(1_100_000)
            _ = try Fixture.drain(conversations, registry: registry, account: "1", on: connection)
            #expect(try connection.scalar("SELECT count(*) FROM app.conv", as: Int.self) == 0)
        }
    }

    @Test func fourConcurrentWorkersOnOneAccountNeverDeadlockOrDoubleCount() async throws {
        try await withMigratedDatabase { database in
            let setup = try database.connect()
            let registry = try Fixture.prepare(setup, registry: Fixture.registry(batchSize: 7))
            try setup.execute("SELECT lethe.add_account('1')")
            // 300 expired conversations whose recordings are shared in pairs (a blob two batches race for).
            try setup.executeScript(
                """
                INSERT INTO app.blobs (id, account_id) SELECT g, 1 FROM generate_series(1, 150) g;
                INSERT INTO app.conv (id, account_id, ended_at, rec)
                SELECT g, 1, now() - (40 + g % 7) * interval '1 day', 1 + g % 150 FROM generate_series(1, 300) g;
                INSERT INTO app.msg (id, conv_id) SELECT g * 10 + m, g FROM generate_series(1, 300) g, generate_series(1, 3) m;
                INSERT INTO app.blobs (id, account_id) SELECT 100000 + g, 1 FROM generate_series(1, 900) g;
                INSERT INTO app.att (id, msg_id, blob_id)
                SELECT row_number() OVER (), m.id, 100000 + row_number() OVER () FROM app.msg m;
                """)
            setup.close()
            let type = registry.entityTypes["conversations"]!
            let totals = try await withThrowingTaskGroup(of: (roots: Int, rows: Int).self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        let thread = ConnectionThread(conninfo: database.url, name: "batch")
                        defer { Task { await thread.shutdown() } }
                        return try await thread.run { connection in
                            var roots = 0
                            var rows = 0
                            let batch = RetentionBatch(type: type, registry: registry)
                            while true {
                                let result = try batch.run(account: "1", task: nil, worker: nil, on: connection)
                                roots += result.roots
                                rows += result.totalRows
                                if result.roots == 0 { return (roots, rows) }
                            }
                        }
                    }
                }
                var sum = (roots: 0, rows: 0)
                for try await part in group { sum = (sum.roots + part.roots, sum.rows + part.rows) }
                return sum
            }
            let check = try database.connect()
            defer { check.close() }
            #expect(totals.roots == 300)
            #expect(totals.rows == 300 + 900 + 900)
            #expect(try check.scalar("SELECT count(*) FROM app.conv", as: Int.self) == 0)
            #expect(try check.scalar("SELECT count(*) FROM app.att", as: Int.self) == 0)
            #expect(try check.scalar("SELECT sum(total_rows)::int FROM lethe.deletion_log", as: Int.self) == 2100)
            // Every attachment blob was sole-owned; shared recordings may be left to orphan GC, never deleted while used.
            #expect(try check.scalar("SELECT count(*) FROM app.blobs WHERE id > 100000", as: Int.self) == 0)
        }
    }
}
