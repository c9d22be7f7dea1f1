import Foundation
import Retention
import Store

/// `lethe status --check`: the problems an on-call engineer acts on, one line each, with
/// counts, the oldest, and at most a few accounts (the facts are sampled in Store).
enum StatusCheck {
    /// The default of `--max-behind`: a day, well above a check interval (default 1h) plus
    /// a run, so a healthy fleet never trips it; a backlog that old means retention stopped.
    static let defaultMaxBehind = "1d"

    /// One line per problem; empty when all is well.
    static func problems(_ facts: StatusCheckFacts, maxBehind: Duration) -> [String] {
        var lines: [String] = []
        let limit = DurationText.format(maxBehind)
        if facts.deadTasks > 0 {
            let kinds = facts.deadByKind.map { "\($0.kind) \($0.tasks)" }.joined(separator: ", ")
            lines.append(
                "DEAD: \(facts.deadTasks) dead task\(plural(facts.deadTasks)) (\(kinds)"
                    + (facts.oldestDeadSeconds.map { "; oldest died \(HumanText.age(seconds: $0)) ago" } ?? "")
                    + "): lethe task list --state dead, then lethe task retry ID")
        }
        if !facts.leaderAlive {
            lines.append(
                "NO LEADER: no live coordinator leads (\(facts.coordinatorsAlive) alive): nothing is scheduled, "
                    + "rescued or pruned; start lethe coordinator")
        }
        if facts.workersAlive == 0 {
            lines.append(
                "NO WORKER: no live worker (\(facts.workersLost) lost); \(facts.dueTasks) task\(plural(facts.dueTasks)) "
                    + "due wait; start lethe worker")
        }
        if let line = backlogProblem(facts.backlog) { lines.append(line) }
        if facts.behindCount > 0 {
            let worst = facts.behind.map {
                "\($0.accountID)/\($0.entityType) \(HumanText.age(seconds: $0.behindSeconds))"
            }
            let more = facts.behindCount - facts.behind.count
            lines.append(
                "BEHIND: \(facts.behindCount) account×type pair\(plural(facts.behindCount)) behind policy by more "
                    + "than \(limit) (worst: \(worst.joined(separator: ", "))\(more > 0 ? ", … \(more) more" : "")); "
                    + "see \(facts.backlog?.source == .snapshot ? "lethe.retention_backlog_snapshot" : "lethe.retention_backlog")"
            )
        }
        if facts.failedFiles > 0 {
            let accounts = facts.failedFileAccounts.joined(separator: ", ")
            lines.append(
                "UPLOADS FAILING: \(facts.failedFiles) archive file\(plural(facts.failedFiles)) failed to upload or "
                    + "delete (accounts: \(accounts)\(facts.failedFileAccounts.count < facts.failedFiles ? ", …" : "")"
                    + (facts.oldestFailedFileSeconds.map { "; oldest created \(HumanText.age(seconds: $0)) ago" } ?? "")
                    + "): lethe archive list, then lethe archive retry ID")
        }
        if facts.stuckJobCount > 0 {
            let jobs = facts.stuckJobs.map { "\($0.accountID) \($0.state) \(HumanText.age(seconds: $0.ageSeconds))" }
            let more = facts.stuckJobCount - facts.stuckJobs.count
            lines.append(
                "ARCHIVE STUCK: \(facts.stuckJobCount) archive job\(plural(facts.stuckJobCount)) not uploaded after "
                    + "\(limit) (oldest: \(jobs.joined(separator: ", "))\(more > 0 ? ", … \(more) more" : "")); "
                    + "see lethe.open_archive_jobs")
        }
        return lines
    }

    /// The line printed when there is no problem.
    static func okLine(_ facts: StatusCheckFacts, maxBehind: Duration) -> String {
        "OK: leader alive, \(facts.workersAlive) worker\(plural(facts.workersAlive)) alive, no dead tasks, "
            + "no account behind policy by more than \(DurationText.format(maxBehind)) (\(backlogSource(facts.backlog))), "
            + "no failing uploads"
    }

    /// Where BEHIND was judged, for the OK line.
    static func backlogSource(_ backlog: BacklogSnapshot.Freshness?) -> String {
        guard let backlog, backlog.source == .snapshot, let age = backlog.ageSeconds else {
            return "live backlog"
        }
        return "backlog snapshot of \(HumanText.age(seconds: age)) ago"
    }

    /// A missing or stale backlog snapshot while the leader should refresh it: BEHIND was then
    /// judged on the live view (exact, but slow on many accounts), and the refresh needs a look.
    static func backlogProblem(_ backlog: BacklogSnapshot.Freshness?) -> String? {
        guard let backlog, let problem = backlog.problem else { return nil }
        let live = "BEHIND was judged on the live lethe.retention_backlog instead (slow on many accounts)"
        if problem == "missing" {
            return "BACKLOG SNAPSHOT MISSING: no leader has refreshed lethe.retention_backlog_snapshot yet; \(live); "
                + "start lethe coordinator (coordinator.backlog_interval 0 turns the snapshot off)"
        }
        let age = backlog.ageSeconds.map { HumanText.age(seconds: $0) } ?? "?"
        let interval = backlog.intervalSeconds.map { HumanText.age(seconds: $0) } ?? "?"
        return "BACKLOG SNAPSHOT STALE: lethe.retention_backlog_snapshot was measured \(age) ago, more than twice the "
            + "leader's coordinator.backlog_interval (\(interval)); \(live); check that a coordinator leads and "
            + "its log for \"backlog snapshot\" failures"
    }

    private static func plural(_ count: Int) -> String { count == 1 ? "" : "s" }
}
