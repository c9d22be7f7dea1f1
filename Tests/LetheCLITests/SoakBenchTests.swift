import Foundation
import TestSupport
import Testing

/// The short version of `lethe bench soak`: the real binary with its coordinator and worker
/// processes against the test server, writing a CSV of the expected columns and samples.
@Suite struct SoakBenchTests {
    static let columns = [
        "elapsed_s", "coordinator_rss_mb", "worker1_rss_mb", "worker2_rss_mb", "connections", "queue_due",
        "queue_running", "app_table_mb", "app_index_mb", "lethe_table_mb", "lethe_index_mb", "app_dead_tuples",
        "lethe_dead_tuples", "app_live_tuples", "retention_backlog_rows", "open_archive_jobs", "deleted_rows",
        "wal_mb_per_s", "ingested_rows",
    ]

    @Test(.timeLimit(.minutes(5))) func aShortSoakWritesEverySeriesAndJudgesIt() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-soak-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let csv = directory + "/soak.csv"
            let result = try await offThePool {
                try LetheProcess.run([
                    "bench", "soak", "--duration", "30s", "--interval", "5s", "--workers", "2", "--tenants", "3",
                    "--archiving", "1", "--ingest", "5", "--csv", csv, "--database-url",
                    try TestEnvironment.databaseURL(),
                ])
            }
            #expect(result.status == 0, "\(result.output)")
            let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").map(String.init)
            #expect(lines.first == Self.columns.joined(separator: ","), "\(lines.first ?? "")")
            let rows = lines.dropFirst().map { $0.split(separator: ",").compactMap { Double($0) } }
            // A sample at the start and every 5 s to 30 s; a stalled machine may skip some.
            #expect(rows.count >= 3 && rows.count <= 7, "\(lines)")
            #expect(rows.allSatisfy { $0.count == Self.columns.count }, "\(lines)")
            let last = try #require(rows.last)
            #expect(last[0] >= 30, "\(lines)")
            func value(_ row: [Double], _ column: String) -> Double { row[Self.columns.firstIndex(of: column)!] }
            // Every process was alive at every sample and each holds connections.
            for row in rows.dropFirst() {  // the first sample may come before the processes connect
                for process in ["coordinator_rss_mb", "worker1_rss_mb", "worker2_rss_mb"] {
                    #expect(value(row, process) > 1, "\(process): \(lines)")
                }
                #expect(value(row, "connections") >= 3, "\(lines)")
                #expect(value(row, "app_table_mb") > 0, "\(lines)")
            }
            #expect(value(last, "ingested_rows") > 0, "\(lines)")
            #expect(result.stdout.contains("series flat over the last half"), "\(result.output)")
            #expect(result.stdout.contains("worker1_rss_mb"), "\(result.output)")
        }
    }

    @Test func anIntervalLongerThanHalfTheDurationIsRefused() throws {
        let result = try LetheProcess.run([
            "bench", "soak", "--duration", "30s", "--interval", "20s", "--database-url",
            try TestEnvironment.databaseURL(),
        ])
        #expect(result.status == 2, "\(result.output)")
        #expect(result.stderr.contains("--interval 20s"), "\(result.output)")
    }
}
