import Foundation
import Postgres
import TestSupport
import Testing

/// The short versions of `lethe bench fairness`, of the archive bench's archive part and of
/// the queue bench's cost table, run
/// through the real binary, so a broken bench fails CI rather than the next measurement.
@Suite struct BenchFairnessScalingTests {
    /// Every small tenant finishes in both runs, each run's figures are there, and the
    /// verdict names the task budget.
    @Test(.timeLimit(.minutes(5))) func fairnessBenchReportsBothRunsAndTheVerdict() async throws {
        let result = try await offThePool {
            try LetheProcess.run([
                "bench", "fairness", "--big-conversations", "3000", "--small-tenants", "6", "--small-conversations",
                "2",
                "--messages", "2", "--batch-size", "200", "--processes", "1", "--concurrency", "2", "--task-budget",
                "500ms",
                "--database-url", try TestEnvironment.databaseURL(),
            ])
        }
        #expect(result.status == 0, "\(result.output)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        // RUN, SMALL TENANTS, ROWS EACH, FINISH P50, …: both runs finished all 6 tenants, at least
        // 6 rows each (2 conversations with 2 messages, and their attachments and blobs), and the
        // big tenant deleted something meanwhile.
        for run in ["alone", "with the big tenant"] {
            let row = try #require(lines.first { $0.hasPrefix(run + "  ") }, "\(result.output)")
            let fields = row.dropFirst(run.count).split(separator: " ").map(String.init)
            #expect(fields.count >= 2 && fields[0] == "6" && (Int(fields[1]) ?? 0) >= 6, "\(row)")
            let finishP50 = Double(fields.count > 2 ? fields[2] : "") ?? -1
            #expect(finishP50 > 0, "\(row)")
        }
        let crowded = try #require(lines.first { $0.hasPrefix("with the big tenant  ") })
        let bigRows = crowded.split(separator: " ").map(String.init).dropFirst(4 + 12).first
        #expect(bigRows.flatMap { Int($0) }.map { $0 > 0 } == true, "\(crowded)")
        #expect(
            lines.contains {
                $0.hasPrefix("p99 difference: ") && $0.contains("task budget (worker.task_budget) 500ms")
            },
            "\(result.output)")
    }

    /// The short version of `lethe bench archive`'s archive part: both tenants go end to end
    /// through a worker process and through the operator's script (psql, bsdtar, sftp) to
    /// the test sshd; each run has its row with the three steps, and a median verdict; the
    /// site keeps nothing of either side, and the scratch database is dropped.
    @Test(.timeLimit(.minutes(5))) func archiveBenchComparesTheWorkerWithTheOperatorsScript() async throws {
        let server = try TestSSHServer.fromEnvironment()
        // A directory of its own on the shared test server, owned by its SFTP user.
        let directory = server.root + "/bench-archive-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.setAttributes([.ownerAccountName: server.user], ofItemAtPath: directory)
        let result = try await offThePool {
            try LetheProcess.run([
                "bench", "archive", "--records", "1MB", "--recordings", "8MB", "--runs", "1", "--only", "archive",
                "--sftp", "sftp://\(server.user)@\(server.host):\(server.port)\(directory)",
                "--identity", server.keyPath, "--known-hosts", server.knownHostsPath,
                "--database-url", try TestEnvironment.databaseURL(),
            ])
        }
        #expect(result.status == 0, "\(result.output)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        for tenant in ["JSON records, ", "recordings, 2 × 4 MiB"] {
            for who in ["lethe worker", "operator script"] {
                let row = try #require(
                    lines.first { $0.hasPrefix(tenant) && $0.contains("  1  ") && $0.contains(who) }, "\(result.output)"
                )
                // INPUT MB, PLAN · COPY, PACK · BSDTAR, UPLOAD · SFTP, TOTAL S: all measured.
                let numbers = row.components(separatedBy: who).last!.split(separator: " ").prefix(5)
                    .compactMap { Double($0) }
                #expect(numbers.count == 5 && numbers.allSatisfy { $0 > 0 }, "\(row)")
            }
            #expect(
                lines.contains { $0.hasPrefix(tenant) && $0.contains("median  script ÷ lethe") }, "\(result.output)")
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: directory)
        #expect(left.isEmpty, "left on the site: \(left)")
        let name = try #require(
            result.stdout.firstMatch(of: /scratch database (lethe_bench_arc_[0-9]+)/).map { String($0.1) })
        let connection = try Connection.connect(try TestEnvironment.databaseURL())
        defer { connection.close() }
        #expect(try connection.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]).count == 0)
    }

    /// The queue bench's cost table: a row per process count and system, with CPU seconds
    /// of PostgreSQL (the test server runs on this machine) and of the workers.
    @Test(.timeLimit(.minutes(3))) func queueBenchShowsWhereTheTimeWent() async throws {
        let result = try await offThePool {
            try LetheProcess.run([
                "bench", "queue", "--tasks", "2000", "--processes", "1,2", "--concurrency", "20",
                "--database-url", try TestEnvironment.databaseURL(),
            ])
        }
        #expect(result.status == 0, "\(result.output)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let header = try #require(lines.firstIndex { $0.hasPrefix("PROCESSES  SYSTEM") }, "\(result.output)")
        let rows = lines[(header + 1)...].prefix(4).map { $0.split(separator: " ").map(String.init) }
        #expect(rows.map { $0.first } == ["1", "1", "2", "2"], "\(result.output)")
        for row in rows {
            // PROCESSES, SYSTEM (one or two words), CLAIM+COMPLETE/S, PG CPU S, LETHE CPU S, …
            let cells = row[1] == "plain" ? Array(row.dropFirst(3)) : Array(row.dropFirst(2))
            let (postgres, lethe) = (
                Double(cells.count > 1 ? cells[1] : "") ?? -1, Double(cells.count > 2 ? cells[2] : "") ?? -1
            )
            #expect(postgres > 0 && lethe >= 0, "\(row)")
        }
    }
}
