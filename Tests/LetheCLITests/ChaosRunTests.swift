import Foundation
import TestSupport
import Testing

/// The CI version of `lethe bench chaos` (docs/reliability.md): a short run under every kind
/// of fault passes its checks, and a run in which a held row is deleted behind Lethe's back
/// fails them, naming the row.
@Suite(.serialized) struct ChaosRunTests {
    @Test func shortChaosRunPassesEveryCheck() async throws {
        let result = try await offThePool {
            try LetheProcess.run([
                "bench", "chaos", "--duration", "2m", "--seed", "19", "--tenants", "40", "--scale", "400",
            ])
        }
        #expect(result.status == 0, "\(result.output.suffix(6000))")
        let out = result.stdout
        for fault in [
            "kill -9 worker", "kill -9 leading coordinator", "PostgreSQL restart", "sshd stopped",
            "spool directory deleted", "worker paused past its lease",
        ] {
            #expect(out.contains("fault ") && out.contains(fault), "no \(fault) in \(out.suffix(4000))")
        }
        for check in [
            "deleted rows eligible when decided", "articles keeping their newest versions",
            "archive files on every site and read back", "deleted rows of archiving accounts in exactly one archive",
            "(account, type) pairs drained of eligible rows", "tasks not stuck running",
            "worker rows alive only with a process",
        ] {
            #expect(out.contains(check), "no check \(check) in \(out.suffix(4000))")
        }
        #expect(out.contains("chaos: every check passed"), "\(out.suffix(4000))")
        // Rows really went, archives were really read: the checks had something to check.
        let eligible = out.split(separator: "\n").first { $0.contains("deleted rows eligible when decided") }
        let rows = eligible.flatMap { line in line.split(separator: " ").compactMap { Int($0) }.first } ?? 0
        #expect(rows > 0, "\(eligible ?? "no line")")
        let archived = out.split(separator: "\n").first { $0.contains("archive files on every site and read back") }
        let files = archived.flatMap { line in line.split(separator: " ").compactMap { Int($0) }.first } ?? 0
        #expect(files > 0, "\(archived ?? "no line")")
    }

    /// The checker can fail: the run deletes a row of held account 9 itself.
    @Test func forbiddenDeletionIsCaught() async throws {
        let result = try await offThePool {
            try LetheProcess.run([
                "bench", "chaos", "--duration", "30s", "--seed", "5", "--tenants", "12", "--scale", "200",
                "--inject-forbidden-deletion",
            ])
        }
        #expect(result.status == 1, "\(result.output.suffix(6000))")
        #expect(result.stdout.contains("forbidden deletion (test only)"), "\(result.stdout.suffix(4000))")
        #expect(
            result.stdout.contains("FAILED eligible: app.audit_log key")
                && result.stdout.contains("no Lethe deletion record of audit_log for account 9"),
            "\(result.stdout.suffix(4000))")
        #expect(result.stdout.contains("check failures"))
    }
}
