import Foundation
import Postgres
import Store
import TestSupport
import Testing

@testable import LetheConfiguration

/// An archive job's deletion batch against a hold placed while it waits for the account.
@Suite struct ArchiveLockTests {
    @Test func aHoldCommittedWhileAnArchiveDeletionBatchWaitsStopsIt() async throws {
        try await withMigratedDatabase { database in
            let fixture = try ArchiveFixture(database: database)
            try fixture.addFileSite()
            try fixture.enableArchiving()
            try fixture.snapshot()
            let jobID = try fixture.startJob()
            try fixture.runUntilIdle()
            let file = try #require(try fixture.files(job: jobID).first, "\(fixture.diagnostics())")
            #expect(file.status == "uploaded", "\(fixture.diagnostics())")

            let text = try String(contentsOfFile: fixture.configPath, encoding: .utf8)
            let registry = try Configuration.parse(text, source: fixture.configPath).registry
            let session = fixture.connection
            // Long lock timeout: the deletion must still be waiting when a loaded suite looks.
            let jobs = ArchiveJobs(
                registry: try RegistryCatalog.compile(registry, on: session), maxRootsPerType: 1_000_000,
                timeouts: DeletionTimeouts(lock: .seconds(600), statement: .seconds(600)))
            let job = try #require(
                try jobs.openJobs(account: "1", on: session).first { $0.id.uuidString.lowercased() == jobID })
            let type = try #require(jobs.types.first { $0.name == "conversations" })
            #expect(try fixture.manifestIDs(job: jobID, type: "conversations", index: 0).count > 0)

            let thread = ConnectionThread(conninfo: database.url, name: "archive-delete")
            let pid: Int32 = try await thread.run { try $0.scalar("SELECT pg_backend_pid()") }
            try session.execute("BEGIN")
            try session.execute("SELECT lethe.place_hold('1', NULL, 'race test', NULL)")
            async let outcome = thread.run { connection in
                try jobs.deleteBatch(
                    job, type: type, after: nil, archive: file.id, task: nil, worker: nil, on: connection
                ).status
            }
            let observer = try database.connect()
            defer { observer.close() }
            let waited = try await {
                for _ in 0..<600 {
                    let waiting: Bool = try observer.scalar(
                        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)", [pid])
                    if waiting { return true }
                    try await Task.sleep(for: .milliseconds(50))
                }
                return false
            }()
            #expect(waited, "the deletion batch did not wait for the account lock")
            try session.execute("COMMIT")
            #expect(try await outcome == .stopped("held: race test"))
            await thread.shutdown()
            #expect(try fixture.gone(account: 1).isEmpty, "rows went although a hold was placed")
        }
    }
}
