import Foundation
import Postgres
import Retention
import TestSupport
import Testing

@testable import Store

/// A registry sync and the deleting transactions: a sync waits for the batches in flight,
/// and a batch compiled from a registry no longer in force deletes nothing.
@Suite struct RegistryGuardTests {
    @Test func aSyncWaitsForABatchInFlightAndABatchAfterItSeesTheChange() async throws {
        try await withMigratedDatabase { database in
            let setup = try database.connect()
            defer { setup.close() }
            let registry = try Fixture.prepare(setup)
            try setup.execute("SELECT lethe.add_account('1')")
            try Fixture.conversation(setup, id: 1, account: 1, endedDaysAgo: 400)
            try setup.execute(
                "INSERT INTO lethe.registry_source (source, sha256, synced_by, synced_host) VALUES ('', repeat('a', 64), 'test', 'here')"
            )
            // A batch in flight holds the registry lock shared: a sync must wait for it.
            let batch = try database.connect()
            defer { batch.close() }
            try batch.execute("BEGIN")
            try RegistryGuard.check(nil, on: batch)
            let syncer = ConnectionThread(conninfo: database.url, name: "sync")
            let pid: Int32 = try await syncer.run { try $0.scalar("SELECT pg_backend_pid()") }
            async let synced: Void = syncer.run { connection in
                try RegistrySync.sync(registry, defaultCheckInterval: .seconds(3600), on: connection)
            }
            #expect(
                eventually(timeout: .seconds(120)) {
                    (try? setup.scalar(
                        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)", [pid], as: Bool.self))
                        ?? false
                }, "the sync did not wait for the batch in flight")
            try batch.execute("COMMIT")
            try await synced
            await syncer.shutdown()
            // A batch compiled from another registry than the one in force deletes nothing.
            var stale = registry
            stale.version = String(repeating: "b", count: 64)
            let type = stale.entityTypes["conversations"]!
            #expect(throws: RegistryChanged.self) {
                try RetentionBatch(type: type, registry: stale).run(account: "1", task: nil, worker: nil, on: setup)
            }
            #expect(try setup.scalar("SELECT count(*) FROM app.conv", as: Int.self) == 1)
            var current = registry
            current.version = String(repeating: "a", count: 64)
            let result = try RetentionBatch(type: current.entityTypes["conversations"]!, registry: current).run(
                account: "1", task: nil, worker: nil, on: setup)
            #expect(result.roots == 1)
        }
    }

    /// Between the guard's check and the first statement that touches a table, no index that
    /// proved a key can go: the guard holds the tables ACCESS SHARE until the transaction ends.
    @Test func aProvingIndexCannotBeDroppedWhileADeletingTransactionRuns() async throws {
        try await withMigratedDatabase { database in
            let setup = try database.connect()
            defer { setup.close() }
            let registry = try Fixture.prepare(setup)
            let proofs = registry.keyProofs
            try #require(!proofs.isEmpty)
            // The statement that removes the first proof: its constraint, or the index itself.
            let drop = try setup.scalar(
                """
                SELECT coalesce(
                    (SELECT format('ALTER TABLE %s DROP CONSTRAINT %I CASCADE', conrelid::regclass, conname)
                     FROM pg_constraint WHERE conindid = $1::bigint::oid AND contype IN ('p', 'u')),
                    format('DROP INDEX %s', $1::bigint::oid::regclass))
                """, [proofs[0]], as: String.self)
            let batch = try database.connect()
            defer { batch.close() }
            try batch.execute("BEGIN")
            try RegistryGuard.check(nil, proofs: proofs, on: batch)
            try setup.execute("SET lock_timeout = '300ms'")
            let refused = #expect(throws: PostgresError.self) { try setup.execute(drop) }
            #expect(refused?.sqlState == .lockNotAvailable, "\(String(describing: refused))")
            try batch.execute("COMMIT")
            try setup.execute(drop)
            #expect(throws: KeyProofGone.self) {
                try setup.withTransaction { try RegistryGuard.check(nil, proofs: proofs, on: $0) }
            }
        }
    }
}
