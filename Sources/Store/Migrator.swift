import Foundation
import Logging
import Postgres
import Retention

/// Applies `migrations/*.sql` in version order, each in its own transaction, under a
/// session advisory lock so that concurrent runs apply every file exactly once.
public struct Migrator: Sendable {
    /// The advisory-lock key every `lethe migrate` takes ("lethemig" in ASCII).
    public static let lockKey: Int64 = 0x6c65_7468_656d_6967

    public let files: [MigrationFile]
    let logger: Logger

    public init(files: [MigrationFile], logger: Logger = Logger(label: "lethe.migrate")) {
        self.files = files.sorted { $0.version < $1.version }
        self.logger = logger
    }

    /// A migration's place in the database: applied, pending, or applied from a file that
    /// has since changed or vanished.
    public struct Entry: Sendable, Equatable {
        public enum State: String, Sendable { case applied, pending, modified, missingFile = "missing file" }
        public var version: Int
        public var name: String
        public var state: State
        public var appliedAt: Date?
    }

    /// Every file and every applied record, matched by version, in version order.
    public func status(_ connection: Connection) throws -> [Entry] {
        let applied = try appliedMigrations(connection)
        var entries: [Entry] = []
        for file in files {
            if let record = applied[file.version] {
                let state: Entry.State = record.checksum == file.checksum ? .applied : .modified
                entries.append(Entry(version: file.version, name: file.name, state: state, appliedAt: record.appliedAt))
            } else {
                entries.append(Entry(version: file.version, name: file.name, state: .pending, appliedAt: nil))
            }
        }
        for (version, record) in applied where !files.contains(where: { $0.version == version }) {
            entries.append(Entry(version: version, name: record.name, state: .missingFile, appliedAt: record.appliedAt))
        }
        return entries.sorted { $0.version < $1.version }
    }

    /// The files not applied yet, after checking that applied ones are unchanged.
    public func pending(_ connection: Connection) throws -> [MigrationFile] {
        try plan(against: try appliedMigrations(connection))
    }

    /// Applies every pending file and returns those applied, in order. Calls `progress`
    /// after each. Throws `MigrationError` (before applying anything) when an applied file
    /// was edited or removed, a pending file is numbered below an applied one, or the
    /// connection goes through a pooler (the migration lock is a session lock).
    @discardableResult
    public func apply(
        _ connection: Connection, progress: (MigrationFile, Duration) -> Void = { _, _ in }
    )
        throws -> [MigrationFile]
    {
        // The migration lock is a session lock: a transaction pooler would keep it on a pooled
        // server connection (no exclusion, and a lock left behind hangs later runs).
        if try connection.isThroughPooler() { throw MigrationError.throughPooler }
        try connection.advisoryLock(Self.lockKey)
        defer { _ = try? connection.advisoryUnlock(Self.lockKey) }
        // Read what is applied only once the lock is held: a concurrent run may just have finished.
        let pending = try plan(against: try appliedMigrations(connection))
        try Self.refuseTransactionControl(in: pending)
        var done: [MigrationFile] = []
        for file in pending {
            let clock = ContinuousClock()
            let start = clock.now
            try connection.withTransaction { connection in
                try run(file, on: connection)
                let elapsed = start.duration(to: clock.now)
                try connection.execute(
                    """
                    INSERT INTO lethe.schema_migrations (version, name, checksum, execution_ms)
                    VALUES ($1, $2, $3, $4)
                    """,
                    [file.version, file.name, file.checksum, elapsed.milliseconds])
            }
            let elapsed = start.duration(to: clock.now)
            logger.debug("applied migration", metadata: [LogKey.migration: "\(file.fileName)"])
            progress(file, elapsed)
            done.append(file)
        }
        return done
    }

    /// Refuses, before anything runs, a file with a statement that would end or split the
    /// transaction it runs in (BEGIN, COMMIT, ROLLBACK, …): part of it would be committed
    /// whatever follows, and `baseline` runs files where a COMMIT would make its scratch work
    /// permanent.
    static func refuseTransactionControl(in files: [MigrationFile]) throws(MigrationError) {
        let control: Set<String> = ["begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release"]
        for file in files {
            for statement in SQLTokens.statements(file.sql) {
                guard let first = statement.first?.word else { continue }
                if control.contains(first)
                    || (first == "prepare" && statement.dropFirst().first == .word("transaction"))
                {
                    throw .transactionControlInFile(file.fileName)
                }
            }
        }
    }

    /// Runs one file's SQL inside the caller's transaction, recording nothing.
    func run(_ file: MigrationFile, on connection: Connection) throws {
        try connection.executeScript(file.sql)
        guard connection.isInTransaction else { throw MigrationError.transactionControlInFile(file.fileName) }
    }

    struct Applied {
        var name: String
        var checksum: String
        var appliedAt: Date
    }

    func appliedMigrations(_ connection: Connection) throws -> [Int: Applied] {
        let exists = try connection.query("SELECT to_regclass('lethe.schema_migrations') IS NOT NULL")[0]
            .decode(Bool.self, at: 0)
        guard exists else { return [:] }
        var applied: [Int: Applied] = [:]
        for row in try connection.query("SELECT version, name, checksum, applied_at FROM lethe.schema_migrations") {
            let (version, name, checksum, appliedAt) = try row.decode((Int, String, String, Date).self)
            applied[version] = Applied(name: name, checksum: checksum, appliedAt: appliedAt)
        }
        return applied
    }

    private func plan(against applied: [Int: Applied]) throws(MigrationError) -> [MigrationFile] {
        for (version, record) in applied.sorted(by: { $0.key < $1.key }) {
            guard let file = files.first(where: { $0.version == version }) else {
                throw .appliedFileMissing(version: version, name: record.name)
            }
            if file.checksum != record.checksum {
                throw .modifiedAfterApply(fileName: file.fileName, applied: record.checksum, current: file.checksum)
            }
        }
        let latest = applied.keys.max() ?? 0
        let pending = files.filter { applied[$0.version] == nil }
        if let early = pending.first(where: { $0.version < latest }) {
            throw .outOfOrder(fileName: early.fileName, latestApplied: latest)
        }
        return pending
    }
}
