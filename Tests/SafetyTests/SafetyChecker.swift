import LetheBench
import Postgres
import TestSupport

/// A row as the audit saw it (`safety.initial` / `safety.deleted`).
struct AuditedRow {
    var table: String
    var account: String?
    var key: String
    var parent: String?
    var clock: Int64?
    var item: String?
    var status: String?
    var pinned: Bool?
    var blob: String?
    /// The deleting transaction and its commit time (deleted rows only).
    var xid: Int64 = 0
    var committed: Int64 = 0
}

/// Replays the mutator's log against every deleted row and checks that each was, when its
/// transaction committed, eligible under the settings then in force; and that nothing
/// eligible for the whole run was left.
struct SafetyChecker {
    var schema: SchemaModel
    var timeline: PolicyTimeline
    /// Just before Lethe started.
    var started: Int64
    var connection: Connection

    private var cutoffs: [String: Int64] = [:]

    init(schema: SchemaModel, timeline: PolicyTimeline, started: Int64, connection: Connection) {
        self.schema = schema
        self.timeline = timeline
        self.started = started
        self.connection = connection
    }

    static let columns = "tbl, account, key, parent, clock, item, status, pinned, blob"

    static func rows(_ sql: String, deleted: Bool = false, on connection: Connection) throws -> [AuditedRow] {
        try connection.query(sql).map { row in
            let (table, account, key, parent, clock, item, status, pinned, blob) = try row.decode(
                (String, String?, String, String?, Int64?, String?, String?, Bool?, String?).self)
            var audited = AuditedRow(
                table: table, account: account, key: key, parent: parent, clock: clock, item: item, status: status,
                pinned: pinned, blob: blob)
            if deleted {
                audited.xid = try row.decode(Int64.self, at: 9)
                audited.committed = try row.decode(Int64.self, at: 10)
            }
            return audited
        }
    }

    mutating func check() throws -> [Violation] {
        let initial = try Self.rows("SELECT \(Self.columns) FROM safety.initial", on: connection)
        let deleted = try Self.rows(
            """
            SELECT \(Self.columns), xid,
                   (extract(epoch FROM pg_xact_commit_timestamp((xid % 4294967296)::text::xid)) * 1000000)::bigint
            FROM safety.deleted ORDER BY xid
            """, deleted: true, on: connection)
        var records: [Int64: [(account: String, type: String)]] = [:]
        for row in try connection.query("SELECT xid, account_id, entity_type FROM safety.records") {
            let (xid, account, type) = try row.decode((Int64, String, String).self)
            records[xid, default: []].append((account, type))
        }
        let gone = Dictionary(deleted.map { ("\($0.table)/\($0.key)", $0) }, uniquingKeysWith: { a, _ in a })
        let newest = newestVersions(initial)
        var violations: [Violation] = []
        var wronglyDeleted: Set<String> = []
        for row in deleted {
            if let violation = try judge(
                row, records: records[row.xid] ?? [], gone: gone, newest: newest, initial: initial)
            {
                violations.append(violation)
                wronglyDeleted.insert("\(row.table)/\(row.key)")
            }
        }
        // A version deleted wrongly makes an older one the newest: that one Lethe had to leave.
        let kept = newestVersions(initial.filter { !wronglyDeleted.contains("\($0.table)/\($0.key)") })
        violations += try leftBehind(initial, gone: gone, newest: kept)
        violations += try logMismatches(deleted)
        return violations
    }

    // MARK: - Deleted rows

    private mutating func judge(
        _ row: AuditedRow, records: [(account: String, type: String)], gone: [String: AuditedRow],
        newest: Set<String>, initial: [AuditedRow]
    ) throws -> Violation? {
        func violation(_ kind: Violation.Kind, _ why: String) -> Violation {
            Violation(kind: kind, table: label(row.table), key: row.key, account: row.account, why: why)
        }
        if row.table == "blobs" { return try judgeBlob(row, records: records, gone: gone, initial: initial) }
        let (type, index) = locate(row.table)
        guard let record = records.first(where: { $0.type == type.name }) else {
            return violation(.noRecord, "transaction \(row.xid) recorded \(records.map(\.type))")
        }
        if let account = row.account, account != record.account {
            return violation(.wrongAccount, "deleted by account \(record.account)'s \(type.name) task")
        }
        if index > 0 {
            let parentLabel = "\(row.table.split(separator: ".")[0]).\(type.tables[index].parentIndex!)"
            guard let parent = gone["\(parentLabel)/\(row.parent ?? "")"], parent.xid == row.xid else {
                return violation(.parentKept, "its parent \(row.parent ?? "-") was not deleted in that transaction")
            }
            return nil  // the parent, deleted in the same transaction, is judged itself
        }
        guard type.deletes else { return violation(.keepOnly, "type \(type.name) never deletes") }
        switch try verdict(account: record.account, type: type, at: row.committed) {
        case .blocked(let why): return violation(.blocked, "\(why) when its transaction committed at \(row.committed)")
        case .runnable(let cutoff, let asked):
            guard let clock = row.clock else { return violation(.notExpired, "its clock is NULL") }
            if clock >= cutoff {
                return clock < asked
                    ? violation(.withinMinimum, "clock \(clock) ≥ now − minimum \(cutoff) (asked cutoff \(asked))")
                    : violation(.notExpired, "clock \(clock) ≥ cutoff \(cutoff) at commit")
            }
        }
        if !type.guardPredicate.holds(status: row.status ?? "", pinned: row.pinned ?? false) {
            return violation(.guardFalse, "status \(row.status ?? "-"), pinned \(row.pinned ?? false)")
        }
        if newest.contains("\(row.table)/\(row.key)") {
            return violation(.newestVersion, "one of the newest \(type.versions!.keep) of item \(row.item ?? "-")")
        }
        return nil
    }

    private mutating func judgeBlob(
        _ row: AuditedRow, records: [(account: String, type: String)], gone: [String: AuditedRow], initial: [AuditedRow]
    ) throws -> Violation? {
        func violation(_ kind: Violation.Kind, _ why: String) -> Violation {
            Violation(kind: kind, table: "app.blobs", key: row.key, account: row.account, why: why)
        }
        guard let record = records.first else { return violation(.noRecord, "transaction \(row.xid)") }
        if row.account != record.account {
            return violation(.wrongAccount, "deleted by account \(record.account)'s \(record.type) task")
        }
        guard let account = timeline.account(record.account, at: row.committed), account.state == "active",
            !account.retentionDisabled, timeline.hold(on: record.account, type: nil, at: row.committed) == nil
        else { return violation(.blocked, "account \(record.account) not active, disabled or held") }
        for reference in initial where reference.blob == row.key && reference.table != "blobs" {
            let deletion = gone["\(reference.table)/\(reference.key)"]
            if deletion == nil || deletion!.committed > row.committed {
                return violation(
                    .blobReferenced,
                    "\(label(reference.table)) key \(reference.key) (account \(reference.account ?? "-")) still refers to it"
                )
            }
        }
        return nil
    }

    // MARK: - Deletion log

    /// Batches whose `lethe.deletion_records` row counts other rows than the audit saw go.
    private func logMismatches(_ deleted: [AuditedRow]) throws -> [Violation] {
        let byTransaction = Dictionary(grouping: deleted, by: \.xid)
        let types = Set(schema.types.map(\.name))
        var violations: [Violation] = []
        for row in try connection.query(
            "SELECT xid, account_id, entity_type, total_rows, blob_rows FROM safety.records")
        {
            let (xid, account, type, total, blobs) = try row.decode((Int64, String, String, Int64, Int32).self)
            guard types.contains(type) else { continue }
            let rows = byTransaction[xid] ?? []
            let seenBlobs = rows.filter { $0.table == "blobs" }.count
            let seenRows = rows.count - seenBlobs
            if seenRows != Int(total) || seenBlobs != Int(blobs) {
                violations.append(
                    Violation(
                        kind: .logMismatch, table: type, key: "transaction \(xid)", account: account,
                        why: "recorded \(total) rows and \(blobs) blobs; \(seenRows) rows and \(seenBlobs) blobs went"))
            }
        }
        return violations
    }

    // MARK: - Left behind

    /// Roots of accounts the mutator never touched that were eligible when the run started
    /// (then they stay eligible: cutoffs only move forward) but are still there.
    private mutating func leftBehind(
        _ initial: [AuditedRow], gone: [String: AuditedRow], newest: Set<String>
    ) throws
        -> [Violation]
    {
        let changed = timeline.changedAccounts
        var violations: [Violation] = []
        for row in initial
        where row.table != "blobs" && row.table.hasSuffix(".0") && gone["\(row.table)/\(row.key)"] == nil {
            guard let account = row.account, !changed.contains(account), let clock = row.clock else { continue }
            let (type, _) = locate(row.table)
            guard type.deletes, case .runnable(let cutoff, _) = try verdict(account: account, type: type, at: started),
                clock < cutoff, type.guardPredicate.holds(status: row.status ?? "", pinned: row.pinned ?? false),
                !newest.contains("\(row.table)/\(row.key)")
            else { continue }
            violations.append(
                Violation(
                    kind: .leftBehind, table: label(row.table), key: row.key, account: account,
                    why: "clock \(clock) < cutoff \(cutoff) at the start"))
        }
        return violations
    }

    // MARK: - Rules

    enum Verdict {
        case blocked(String)
        /// The cutoff in force (clamped between now − max and now − min) and the one asked.
        case runnable(cutoff: Int64, asked: Int64)
    }

    /// Whether the account's retention of `type` may delete at `time`, and below which clock.
    mutating func verdict(account id: String, type: EntityModel, at time: Int64) throws -> Verdict {
        guard let account = timeline.account(id, at: time) else { return .blocked("account \(id) is not in Lethe") }
        guard account.state == "active" else { return .blocked("account \(id) \(account.state)") }
        guard !account.retentionDisabled else { return .blocked("retention of \(id) disabled by an operator") }
        let policy = account.policies[type.name] ?? PolicyTimeline.Policy()
        guard policy.enabled, !policy.operatorDisabled else { return .blocked("policy of \(id) switched off") }
        guard let interval = policy.retention ?? account.tier.flatMap({ timeline.tierIntervals[$0]?[type.name] })
        else { return .blocked("no interval for \(id)") }
        if let hold = timeline.hold(on: id, type: type.name, at: time) {
            return .blocked("hold \(hold.id) on \(id)\(hold.type.map { " (\($0))" } ?? "") in force")
        }
        let asked = try cutoff(time, interval)
        let latest = try cutoff(time, type.minimum.sql)
        let earliest = try cutoff(time, type.maximum.sql)
        return .runnable(cutoff: min(max(asked, earliest), latest), asked: asked)
    }

    /// `time − interval` in UTC calendar arithmetic, computed by PostgreSQL (cached).
    mutating func cutoff(_ time: Int64, _ interval: String) throws -> Int64 {
        let key = "\(time)/\(interval)"
        if let known = cutoffs[key] { return known }
        let value = try connection.scalar(
            """
            SELECT (extract(epoch FROM (((timestamptz 'epoch' + $1 * interval '1 microsecond') AT TIME ZONE 'UTC')
                                         - $2::interval) AT TIME ZONE 'UTC') * 1000000)::bigint
            """, [time, interval], as: Int64.self)
        cutoffs[key] = value
        return value
    }

    /// Keys (`table/key`) of the newest `keep` rows of every (account, item) of versioned types.
    private func newestVersions(_ initial: [AuditedRow]) -> Set<String> {
        var result: Set<String> = []
        for (t, type) in schema.types.enumerated() {
            guard let keep = type.versions?.keep else { continue }
            let rows = initial.filter { $0.table == "\(t).0" }
            let items = Dictionary(grouping: rows) { "\($0.account ?? "")/\($0.item ?? "")" }
            for (_, versions) in items {
                let sorted = versions.sorted { ($0.clock ?? .max) > ($1.clock ?? .max) }
                for row in sorted.prefix(keep) { result.insert("\(row.table)/\(row.key)") }
            }
        }
        return result
    }

    private func locate(_ table: String) -> (EntityModel, Int) {
        let parts = table.split(separator: ".").compactMap { Int($0) }
        return (schema.types[parts[0]], parts[1])
    }

    private func label(_ table: String) -> String {
        guard table != "blobs" else { return "app.blobs" }
        let (type, index) = locate(table)
        return type.tables[index].label
    }
}
