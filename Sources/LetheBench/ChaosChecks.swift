import ArchiveFormat
import Foundation
import LetheCLI
import Postgres
import Store

/// A row (or process, task, file) a chaos check found wrong.
struct ChaosViolation {
    var check: String
    var row: String
    var why: String
    var account: String?
}

/// The checks after a chaos run, by SQL and by reading every archive back. The rules are
/// the deletion-safety suite's (SafetyChecker in Tests/SafetyTests), applied to the example
/// application's registry as synced into `lethe.entity_types`.
struct ChaosChecks {
    /// An entity type as synced.
    struct EntityType {
        var name: String
        var table: String
        var key: String
        var account: String
        var accountType: String
        var clock: String
        var predicate: String?
        var defaultInterval: String
        var minimum: String
        var maximum: String
        var deletes: Bool
        var versionsItem: String?
        var versionsKeep: Int?
    }

    /// A root row the audit trigger saw go.
    struct DeletedRow {
        var table: String
        var account: String
        var key: String
        var clock: Int64?
        var extra: String?
        var xid: Int64
        var committed: Int64
    }

    let run: ChaosRun
    var timeline: PolicyTimeline
    /// When the quiet drain began (microseconds since 1970).
    let quietAt: Int64
    let livePids: Set<Int>
    private(set) var checked: [(name: String, rows: Int, failed: Int)] = []
    private var cutoffs: [String: Int64] = [:]
    private var types: [String: EntityType] = [:]

    init(run: ChaosRun, timeline: PolicyTimeline, quietAt: Int64, livePids: Set<Int>) {
        self.run = run
        self.timeline = timeline
        self.quietAt = quietAt
        self.livePids = livePids
    }

    /// The audit: each deleted row of the application's root tables, and each deletion
    /// record, with the transaction that wrote it.
    static let auditDDL = """
        CREATE SCHEMA chaos;
        CREATE TABLE chaos.deleted (tbl text NOT NULL, account text, key text, clock timestamptz, extra text,
                                    xid bigint NOT NULL DEFAULT txid_current());
        CREATE FUNCTION chaos.audit() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE r jsonb := to_jsonb(OLD);
        BEGIN
            INSERT INTO chaos.deleted (tbl, account, key, clock, extra)
            VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, r->>'account_id', r->>'id', (r->>TG_ARGV[0])::timestamptz,
                    CASE WHEN TG_NARGS > 1 THEN r->>TG_ARGV[1] END);
            RETURN OLD;
        END $$;
        CREATE TRIGGER chaos_audit AFTER DELETE ON app.conversations FOR EACH ROW EXECUTE FUNCTION chaos.audit('ended_at');
        CREATE TRIGGER chaos_audit AFTER DELETE ON app.audit_log FOR EACH ROW EXECUTE FUNCTION chaos.audit('occurred_at');
        CREATE TRIGGER chaos_audit AFTER DELETE ON app.webhook_calls FOR EACH ROW EXECUTE FUNCTION chaos.audit('executed_at');
        CREATE TRIGGER chaos_audit AFTER DELETE ON app.person_presences FOR EACH ROW EXECUTE FUNCTION chaos.audit('seen_at');
        CREATE TRIGGER chaos_audit AFTER DELETE ON app.persons FOR EACH ROW EXECUTE FUNCTION chaos.audit('last_seen_at', 'anonymous');
        CREATE TRIGGER chaos_audit AFTER DELETE ON app.device_infos FOR EACH ROW EXECUTE FUNCTION chaos.audit('created_at');
        CREATE TRIGGER chaos_audit AFTER DELETE ON app.staff FOR EACH ROW EXECUTE FUNCTION chaos.audit('updated_at');
        CREATE TRIGGER chaos_audit AFTER DELETE ON app.external_contacts FOR EACH ROW EXECUTE FUNCTION chaos.audit('updated_at');
        CREATE TRIGGER chaos_audit AFTER DELETE ON app.enquiries FOR EACH ROW EXECUTE FUNCTION chaos.audit('closed_at', 'status');
        CREATE TRIGGER chaos_audit AFTER DELETE ON app.article_versions FOR EACH ROW EXECUTE FUNCTION chaos.audit('saved_at');
        CREATE TABLE chaos.records (xid bigint NOT NULL DEFAULT txid_current(), account_id text, entity_type text,
                                    archive_id bigint, total_rows bigint);
        CREATE FUNCTION chaos.record() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO chaos.records (account_id, entity_type, archive_id, total_rows)
            VALUES (NEW.account_id, NEW.entity_type, NEW.archive_id, NEW.total_rows);
            RETURN NEW;
        END $$;
        CREATE TRIGGER chaos_record AFTER INSERT ON lethe.deletion_records FOR EACH ROW EXECUTE FUNCTION chaos.record();
        CREATE TABLE chaos.article_counts AS
            SELECT account_id, article_id, count(*)::int AS n FROM app.article_versions GROUP BY 1, 2;
        """

    // MARK: - Processes

    /// Every worker or coordinator row alive by its heartbeat has a process of this run.
    mutating func processChecks(on connection: Connection) throws -> [ChaosViolation] {
        var violations: [ChaosViolation] = []
        let rows = try connection.query(
            """
            SELECT id::text, role, pid FROM lethe.workers
            WHERE stopped_at IS NULL AND last_heartbeat_at > now() - lease_seconds * interval '1 second'
            """)
        for row in rows {
            let (id, role, pid) = try row.decode((String, String, Int).self)
            if !livePids.contains(pid) {
                violations.append(
                    ChaosViolation(
                        check: "worker rows", row: "\(role) \(id) pid \(pid)",
                        why: "alive by its heartbeat, but no process of the run has that pid"))
            }
        }
        checked.append(("worker rows alive only with a process", rows.count, violations.count))
        return violations
    }

    // MARK: - Everything else

    mutating func check(on connection: Connection) throws -> [ChaosViolation] {
        try loadTypes(on: connection)
        var violations: [ChaosViolation] = []
        let deleted = try deletedRows(on: connection)
        violations += try eligibility(deleted, on: connection)
        violations += try versions(on: connection)
        violations += try archives(deleted, on: connection)
        violations += try leftBehind(on: connection)
        violations += try stuckTasks(on: connection)
        return violations
    }

    private mutating func loadTypes(on connection: Connection) throws {
        for row in try connection.query(
            """
            SELECT name, table_name, key_column, account_column, account_type, clock_column, predicate,
                   default_interval::text, min_interval::text, max_interval::text, deletes, versions_item, versions_keep
            FROM lethe.entity_types WHERE active
            """)
        {
            let (name, table, key, account, accountType, clock, predicate) = try row.decode(
                (String, String, String, String, String, String, String?).self)
            let (defaultInterval, minimum, maximum, deletes, item, keep) = try (
                row.decode(String.self, at: 7), row.decode(String.self, at: 8), row.decode(String.self, at: 9),
                row.decode(Bool.self, at: 10), row.decode(String?.self, at: 11), row.decode(Int?.self, at: 12)
            )
            types[name] = EntityType(
                name: name, table: table, key: key, account: account, accountType: accountType, clock: clock,
                predicate: predicate, defaultInterval: defaultInterval, minimum: minimum, maximum: maximum,
                deletes: deletes, versionsItem: item, versionsKeep: keep)
        }
    }

    private func type(ofTable table: String) -> EntityType? { types.values.first { $0.table == table } }

    private func deletedRows(on connection: Connection) throws -> [DeletedRow] {
        try connection.query(
            """
            SELECT tbl, account, key, (extract(epoch FROM clock) * 1000000)::bigint, extra, xid,
                   (extract(epoch FROM pg_xact_commit_timestamp((xid % 4294967296)::text::xid)) * 1000000)::bigint
            FROM chaos.deleted ORDER BY xid
            """
        ).map { row in
            let (table, account, key, clock, extra, xid, committed) = try row.decode(
                (String, String, String, Int64?, String?, Int64, Int64).self)
            return DeletedRow(
                table: table, account: account, key: key, clock: clock, extra: extra, xid: xid, committed: committed)
        }
    }

    /// Every deleted root: Lethe recorded it, its type deletes, and when its transaction
    /// committed (or, for an archive job, when the job was planned, holds and states still
    /// at the commit) the account's settings let it go: active, not disabled or held, its
    /// clock below the cutoff, the type's condition true.
    private mutating func eligibility(_ deleted: [DeletedRow], on connection: Connection) throws -> [ChaosViolation] {
        var records: [Int64: [(account: String, type: String, archive: Int64?)]] = [:]
        for row in try connection.query("SELECT xid, account_id, entity_type, archive_id FROM chaos.records") {
            let (xid, account, type, archive) = try row.decode((Int64, String, String, Int64?).self)
            records[xid, default: []].append((account, type, archive))
        }
        var planned: [Int64: Int64] = [:]
        for row in try connection.query(
            """
            SELECT f.id, (extract(epoch FROM j.planned_at) * 1000000)::bigint
            FROM lethe.archive_files f JOIN lethe.archive_jobs j USING (job_id) WHERE j.planned_at IS NOT NULL
            """)
        {
            let (file, at) = try row.decode((Int64, Int64).self)
            planned[file] = at
        }
        var violations: [ChaosViolation] = []
        for row in deleted {
            func fail(_ why: String) {
                violations.append(
                    ChaosViolation(
                        check: "eligible", row: "\(row.table) key \(row.key) account \(row.account)", why: why))
            }
            guard let type = type(ofTable: row.table) else {
                fail("no entity type has table \(row.table)")
                continue
            }
            guard type.deletes else {
                fail("type \(type.name) is keep-only (delete: false)")
                continue
            }
            guard let record = records[row.xid]?.first(where: { $0.type == type.name && $0.account == row.account })
            else {
                fail("no Lethe deletion record of \(type.name) for account \(row.account) in transaction \(row.xid)")
                continue
            }
            guard let clock = row.clock else {
                fail("its clock \(type.clock) is NULL")
                continue
            }
            var moments = [row.committed]
            if let archive = record.archive, let at = planned[archive] { moments.append(at) }
            var reasons: [String] = []
            var eligible = false
            for moment in moments {
                switch try verdict(account: row.account, type: type, at: moment, blockedAt: row.committed) {
                case .blocked(let why): reasons.append(why)
                case .runnable(let cutoff):
                    if clock < cutoff {
                        eligible = true
                    } else {
                        reasons.append("clock \(clock) ≥ cutoff \(cutoff) at \(moment)")
                    }
                }
            }
            if !eligible {
                fail(reasons.joined(separator: "; ") + " (committed \(row.committed))")
                continue
            }
            if row.table == "app.enquiries" && row.extra != "closed" {
                fail("status \(row.extra ?? "NULL"), not closed")
            }
            if row.table == "app.persons" && row.extra != "true" { fail("not anonymous") }
        }
        checked.append(("deleted rows eligible when decided", deleted.count, violations.count))
        return violations
    }

    /// The newest `keep` versions of every article stay (or all, with fewer).
    private mutating func versions(on connection: Connection) throws -> [ChaosViolation] {
        let keep = types["article_versions"]?.versionsKeep ?? 3
        let rows = try connection.query(
            """
            SELECT a.account_id::text, a.article_id::text, a.n, count(v.id)::int
            FROM chaos.article_counts a
            LEFT JOIN app.article_versions v ON v.account_id = a.account_id AND v.article_id = a.article_id
            GROUP BY 1, 2, 3 HAVING count(v.id) < least(a.n, $1)
            """, [keep])
        var violations: [ChaosViolation] = []
        for row in rows {
            let (account, article, before, now) = try row.decode((String, String, Int, Int).self)
            violations.append(
                ChaosViolation(
                    check: "versions", row: "app.article_versions article \(article) account \(account)",
                    why: "\(now) versions left of \(before); the newest \(keep) must stay"))
        }
        let total = try connection.scalar("SELECT count(*)::int FROM chaos.article_counts", as: Int.self)
        checked.append(("articles keeping their newest versions", total, violations.count))
        return violations
    }

    // MARK: - Archives

    /// Every deleted root of an archiving account: deleted by one archive job that reached
    /// `deleted`, whose files every current site holds (same SHA-256 as recorded), and whose
    /// archive, read back with the account's stored key, holds the root.
    private mutating func archives(_ deleted: [DeletedRow], on connection: Connection) throws -> [ChaosViolation] {
        var violations: [ChaosViolation] = []
        let masterKey = try MasterKey(contentsOf: run.masterKeyFile)
        let administration = ArchiveAdministration(masterKey: masterKey)
        // Every job's files, each checked on every site and read back once.
        var contents: [String: Set<String>] = [:]  // job → "type/key" of its roots
        var jobState: [String: String] = [:]
        var fileJob: [Int64: String] = [:]
        var filesRead = 0
        var keys: [String: String] = [:]
        for account in run.archiving {
            keys[account] = try administration.archiveKey(account: account, on: connection)
        }
        let files = try connection.query(
            """
            SELECT f.id, f.job_id::text, f.account_id, f.file_name, f.sha256, f.status, j.state
            FROM lethe.archive_files f JOIN lethe.archive_jobs j USING (job_id)
            ORDER BY f.job_id, f.part
            """)
        var byJob: [String: [(name: String, sha: String?, account: String)]] = [:]
        for row in files {
            let (id, job, account, name, sha, status, state) = try row.decode(
                (Int64, String, String, String, String?, String, String).self)
            fileJob[id] = job
            jobState[job] = state
            guard status != "superseded", state == "deleted" else { continue }
            byJob[job, default: []].append((name, sha, account))
        }
        for (job, parts) in byJob.sorted(by: { $0.key < $1.key }) {
            var found: [ArchiveFile] = []
            for part in parts {
                for site in run.siteDirectories {
                    let path = site.appendingPathComponent(part.account).appendingPathComponent(part.name).path
                    guard FileManager.default.fileExists(atPath: path) else {
                        violations.append(
                            ChaosViolation(
                                check: "archives on every site", row: part.name, why: "missing from \(site.path)"))
                        continue
                    }
                    let digest = try ArchiveFile(path: path).sha256()
                    if digest != part.sha {
                        violations.append(
                            ChaosViolation(
                                check: "archives on every site", row: path,
                                why: "SHA-256 \(digest) differs from the recorded \(part.sha ?? "NULL")"))
                    }
                    if site == run.siteDirectories[0] { found.append(ArchiveFile(path: path)) }
                }
            }
            guard found.count == parts.count, let account = parts.first?.account, let secret = keys[account] else {
                continue
            }
            let sink = RootCollector()
            do {
                for file in try ArchiveParts.order(found) {
                    _ = try ArchivePartScan.scan(
                        file, key: ArchiveKeys.Key(secret: secret, source: "the stored key of account \(account)"),
                        into: sink)
                    filesRead += 1
                }
            } catch {
                violations.append(ChaosViolation(check: "archives read back", row: "job \(job)", why: "\(error)"))
                continue
            }
            contents[job] = sink.roots(keyColumns: types.mapValues(\.key))
        }
        checked.append(("archive files on every site and read back", filesRead, violations.count))
        var records: [Int64: [(account: String, type: String, archive: Int64?)]] = [:]
        for row in try connection.query("SELECT xid, account_id, entity_type, archive_id FROM chaos.records") {
            let (xid, account, type, archive) = try row.decode((Int64, String, String, Int64?).self)
            records[xid, default: []].append((account, type, archive))
        }
        let archivingRows = deleted.filter { run.archiving.contains($0.account) }
        var failedRows = 0
        for row in archivingRows {
            guard let type = type(ofTable: row.table) else { continue }
            let jobs = Set(
                (records[row.xid] ?? []).filter { $0.account == row.account && $0.type == type.name }
                    .compactMap { $0.archive.flatMap { fileJob[$0] } })
            var why: String?
            if jobs.isEmpty {
                why = "deleted without an archive (no deletion record names an archive file)"
            } else if jobs.count > 1 {
                why = "its transaction names \(jobs.count) archive jobs"
            } else if let job = jobs.first, jobState[job] != "deleted" {
                why = "its archive job \(job) is \(jobState[job] ?? "unknown"), not deleted"
            } else if let job = jobs.first, !(contents[job]?.contains("\(type.name)/\(row.key)") ?? false) {
                why = "not in the archive of job \(job) as read back"
            }
            if let why {
                failedRows += 1
                violations.append(
                    ChaosViolation(
                        check: "archived before deletion", row: "\(row.table) key \(row.key) account \(row.account)",
                        why: why))
            }
        }
        checked.append(("deleted rows of archiving accounts in exactly one archive", archivingRows.count, failedRows))
        return violations
    }

    // MARK: - Left behind

    /// Rows eligible when the quiet drain began (settings final by then; cutoffs only move
    /// forward) that are still there. Held, suspended, disabled and keep-only ones stay.
    mutating func leftBehind(on connection: Connection, record: Bool = true) throws -> [ChaosViolation] {
        if types.isEmpty { try loadTypes(on: connection) }
        var violations: [ChaosViolation] = []
        var candidates = 0
        for type in types.values.sorted(by: { $0.name < $1.name }) where type.deletes {
            for account in timeline.accounts.keys.sorted() {
                guard
                    case .runnable(let cutoff) = try verdict(
                        account: account, type: type, at: quietAt, blockedAt: quietAt)
                else { continue }
                candidates += 1
                let table = Self.quoted(type.table)
                var sql = """
                    SELECT r.\(Self.quoted(type.key))::text FROM \(table) r
                    WHERE r.\(Self.quoted(type.account)) = $1::\(type.accountType)
                      AND r.\(Self.quoted(type.clock)) < timestamptz 'epoch' + $2::bigint * interval '1 microsecond'
                    """
                if let predicate = type.predicate { sql += " AND (\(predicate))" }
                if let item = type.versionsItem, let keep = type.versionsKeep {
                    sql += """
                         AND (SELECT count(*) FROM \(table) n WHERE n.\(Self.quoted(type.account)) = r.\(Self.quoted(type.account))
                              AND n.\(Self.quoted(item)) = r.\(Self.quoted(item)) AND n.\(Self.quoted(type.clock)) > r.\(Self.quoted(type.clock))) >= \(keep)
                        """
                }
                sql += " ORDER BY 1 LIMIT 5"
                for row in try connection.query(sql, [account, cutoff]) {
                    let key = try row.decode(String.self, at: 0)
                    violations.append(
                        ChaosViolation(
                            check: "eligible rows gone", row: "\(type.table) key \(key) account \(account)",
                            why: "eligible when the drain began (cutoff \(cutoff)) and still there", account: account))
                }
            }
        }
        if record { checked.append(("(account, type) pairs drained of eligible rows", candidates, violations.count)) }
        return violations
    }

    private mutating func stuckTasks(on connection: Connection) throws -> [ChaosViolation] {
        var violations: [ChaosViolation] = []
        for row in try connection.query(
            "SELECT id, kind, coalesce(account_id, '-'), coalesce(entity_type, '-') FROM lethe.tasks WHERE state = 'running'"
        ) {
            let (id, kind, account, type) = try row.decode((Int64, String, String, String).self)
            violations.append(
                ChaosViolation(
                    check: "no task stuck running", row: "task \(id) \(kind) \(account)/\(type)",
                    why: "still running with every process stopped"))
        }
        let total = try connection.scalar("SELECT count(*)::int FROM lethe.tasks", as: Int.self)
        checked.append(("tasks not stuck running", total, violations.count))
        return violations
    }

    // MARK: - Rules

    enum Verdict {
        case blocked(String)
        case runnable(cutoff: Int64)
    }

    /// The safety suite's rule: blocked by state, switch or hold at `blockedAt`, else the
    /// cutoff of the interval in force at `time` (clamped between now − max and now − min).
    mutating func verdict(account id: String, type: EntityType, at time: Int64, blockedAt: Int64) throws -> Verdict {
        guard let blocking = timeline.account(id, at: blockedAt), let account = timeline.account(id, at: time) else {
            return .blocked("account \(id) is not in Lethe")
        }
        guard blocking.state == "active" else { return .blocked("account \(id) \(blocking.state)") }
        guard !blocking.retentionDisabled else { return .blocked("retention of \(id) disabled by an operator") }
        let policy = account.policies[type.name] ?? PolicyTimeline.Policy()
        let blockingPolicy = blocking.policies[type.name] ?? PolicyTimeline.Policy()
        guard blockingPolicy.enabled, !blockingPolicy.operatorDisabled else {
            return .blocked("policy of \(id) switched off")
        }
        if let hold = timeline.hold(on: id, type: type.name, at: blockedAt) {
            return .blocked("hold \(hold.id) on \(id) in force")
        }
        // A tier without an interval for the type leaves it alone (lethe.add_account gives an
        // account without a tier the defaults as its own policies).
        guard let interval = policy.retention ?? account.tier.flatMap({ timeline.tierIntervals[$0]?[type.name] })
        else { return .blocked("no interval for \(id)") }
        let asked = try cutoff(time, interval)
        let latest = try cutoff(time, type.minimum)
        let earliest = try cutoff(time, type.maximum)
        return .runnable(cutoff: min(max(asked, earliest), latest))
    }

    mutating func cutoff(_ time: Int64, _ interval: String) throws -> Int64 {
        let key = "\(time)/\(interval)"
        if let known = cutoffs[key] { return known }
        let value = try run.session.run {
            try $0.scalar(
                """
                SELECT (extract(epoch FROM (((timestamptz 'epoch' + $1 * interval '1 microsecond') AT TIME ZONE 'UTC')
                                             - $2::interval) AT TIME ZONE 'UTC') * 1000000)::bigint
                """, [time, interval], as: Int64.self)
        }
        cutoffs[key] = value
        return value
    }

    /// `app.t` as `"app"."t"` (names from lethe.entity_types, which Lethe validated).
    static func quoted(_ name: String) -> String {
        name.split(separator: ".").map { "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
            .joined(separator: ".")
    }

    // MARK: - Report

    func printReport(violations: [ChaosViolation], faults: [ChaosFault], say: (String) -> Void) {
        say("faults injected: \(faults.count)")
        BenchReport.record("faults injected: \(faults.count)")
        var byKind = TextTable("FAULT", "COUNT", "FIRST AT")
        for kind in ChaosFault.Kind.allCases {
            let these = faults.filter { $0.kind == kind }
            guard let first = these.first else { continue }
            byKind.add(kind.rawValue, "\(these.count)", String(format: "%.1fs", first.at))
        }
        Console.line(byKind.rendered.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
        BenchReport.record(byKind)
        say("checks:")
        var table = TextTable("CHECK", "ROWS CHECKED", "FAILED", "RESULT")
        for item in checked {
            table.add(item.name, "\(item.rows)", "\(item.failed)", item.failed == 0 ? "ok" : "FAILED")
        }
        Console.line(table.rendered.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
        BenchReport.record(table)
        for violation in violations.prefix(100) {
            Console.line("    FAILED \(violation.check): \(violation.row): \(violation.why)")
        }
        if violations.count > 100 { Console.line("    … and \(violations.count - 100) more") }
        let verdict = violations.isEmpty ? "chaos: every check passed" : "chaos: \(violations.count) check failures"
        say(verdict)
        BenchReport.record(verdict)
    }
}

/// Collects the root tables' records (`records/TYPE/0-TABLE.jsonl`) of a job's parts; an
/// entry cut at a part boundary continues in the next part under the same name.
final class RootCollector: ArchiveEntrySink {
    private var current: String?
    private var data: [String: Data] = [:]

    func begin(_ name: String) throws {
        let parts = name.split(separator: "/")
        current = parts.count == 3 && parts[0] == "records" && parts[2].hasPrefix("0-") ? name : nil
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let current else { return }
        data[current, default: Data()].append(contentsOf: bytes)
    }

    func end() throws { current = nil }

    /// `type/key` of every root record, the key read from the type's key column.
    func roots(keyColumns: [String: String]) -> Set<String> {
        var result: Set<String> = []
        for (name, bytes) in data {
            let type = String(name.split(separator: "/")[1])
            let column = keyColumns[type] ?? "id"
            for line in bytes.split(separator: UInt8(ascii: "\n")) {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                    let value = object[column]
                else { continue }
                result.insert("\(type)/\(value)")
            }
        }
        return result
    }
}
