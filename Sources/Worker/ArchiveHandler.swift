import ArchiveFormat
import BackupSites
import Foundation
import LetheMetrics
import Logging
import Postgres
import Retention
import Store

/// The `archive` task (one per account): takes each of the account's open archive jobs a
/// step further — plan the manifest, pack the encrypted ZIP parts, upload them to every
/// backup site, and once deletion is due (auto-delete hour, approval, confirmed download)
/// delete exactly the archived rows. Every step resumes from the state recorded in the
/// database, so a crash at any point neither loses nor duplicates anything.
public struct ArchiveHandler: TaskHandler {
    public let kind = TaskKind.archive

    let jobs: ArchiveJobs
    let settings: ArchiveOptions
    let packer: ArchivePacker
    let administration: ArchiveAdministration

    public init(registry: CompiledRegistry, settings: ArchiveOptions) {
        self.settings = settings
        jobs = ArchiveJobs(
            registry: registry, maxRootsPerType: settings.maxRootsPerType, timeouts: settings.deletionTimeouts,
            planChunkRoots: settings.planChunkRoots)
        packer = ArchivePacker(jobs: jobs, settings: settings)
        administration = ArchiveAdministration(masterKey: settings.masterKey)
    }

    public func run(_ task: ClaimedTask, context: TaskContext) async throws -> TaskProgress {
        guard let account = task.accountID else { throw PermanentTaskFailure("an archive task needs an account") }
        let jobs = self.jobs
        let open = try await context.database.run { try jobs.openJobs(account: account, on: $0) }
        for (index, job) in open.enumerated() {
            try await context.database.run { try jobs.watch(job, on: $0) }
            var job = job
            var logger = context.logger
            logger[metadataKey: LogKey.archive] = "\(job.id)"
            step: while true {
                if context.leaseLost { throw CancellationError() }
                let current = job
                switch job.state {
                case .planning:
                    // One bounded transaction per step; a lost lease stops between chunks.
                    while try await context.database.run({ try jobs.planStep(current, on: $0) }).continues {
                        if context.leaseLost { throw CancellationError() }
                    }
                    job.state = ArchiveJobEvent.plan.target
                case .packing:
                    try await pack(job, context: context, logger: logger)
                    job.state = ArchiveJobEvent.pack.target
                case .uploading:
                    guard try await upload(job, context: context, logger: logger) else {
                        // Lost files: packed again as the next generation, under new names.
                        let refreshed = try await context.database.run { connection in
                            try jobs.openJobs(account: account, on: connection).first { $0.id == current.id }
                        }
                        guard let refreshed else { break step }
                        job = refreshed
                        continue step
                    }
                    job.state = ArchiveJobEvent.upload.target
                case .uploaded:
                    let refreshed = try await context.database.run { connection in
                        try jobs.openJobs(account: account, on: connection).first { $0.id == current.id }
                    }
                    guard let refreshed else { break step }
                    job = refreshed
                    try await removeSuperseded(job, context: context, logger: logger)
                    if let wait = try await context.database.run({ try jobs.deletionWait(refreshed, on: $0) }) {
                        try await context.database.run {
                            try jobs.sleep(refreshed, until: wait.until, note: wait.note, on: $0)
                        }
                        logger.info("archive uploaded; deletion \(wait.note)")
                        break step
                    }
                    // Every site must still hold every file, verified, right before rows go.
                    switch try await verifySites(job, context: context, logger: logger) {
                    case .complete: break
                    case .reuploading:
                        job.state = ArchiveJobEvent.reupload.target
                        continue step
                    case .movedOn:
                        logger.info("archive job moved on while its sites were checked: another worker has it")
                        break step
                    }
                    try await context.database.run { try jobs.beginDeletion(refreshed, on: $0) }
                    job.state = ArchiveJobEvent.beginDeletion.target
                case .deleting:
                    switch try await delete(job, task: task, context: context, logger: logger) {
                    case .finished: break step
                    case .yielded: return .more
                    }
                case .deleted:
                    break step
                }
                if context.shouldYield { return .more }
            }
            // Only with another job left: a task whose jobs all wait (for approval, a site)
            // is done, or a spent budget would requeue it at once, again and again.
            if index < open.count - 1, context.shouldYield { return .more }
        }
        return .done
    }

    // MARK: - Pack

    /// Packs the job one part per REPEATABLE READ transaction, each from the cursor the last
    /// committed part left: a crash or a lost lease repeats at most the part in flight.
    private func pack(_ job: ArchiveJob, context: TaskContext, logger: Logger) async throws {
        let (administration, packer, jobs) = (self.administration, self.packer, self.jobs)
        var (parts, bytes, records) = (0, Int64(0), Int64(0))
        while true {
            if context.leaseLost { throw CancellationError() }
            let part = try await context.database.run { connection in
                let key = try administration.archiveKey(account: job.accountID, on: connection)
                try jobs.beginPart(job, on: connection)
                return try connection.withTransaction(.repeatableRead) { connection in
                    let cursor = try jobs.lockForPacking(job, on: connection)
                    let part = try packer.packPart(job, passphrase: key, cursor: cursor, on: connection)
                    try jobs.recordPart(job, file: part.file, next: part.next, on: connection)
                    return part
                }
            }
            if part.restarted {
                logger.warning(
                    "packing from part 1 again: earlier parts are not in this worker's spool, or the registry changed"
                )
            }
            (parts, bytes, records) = (parts + 1, bytes + part.file.size, records + part.file.records)
            context.recordArchived(bytes: part.file.size)
            logger.debug("archive part \(part.file.part) packed: \(part.file.name), \(part.file.size) bytes")
            if part.next == nil { break }
        }
        logger.info("archive packed: \(parts) part(s) by this task, \(records) records, \(bytes) bytes")
    }

    // MARK: - Upload

    /// A site and what it takes to open it, read on the database thread.
    struct Site: Sendable {
        var record: BackupSiteRecord
        var url: BackupSiteURL
        var credentials: SiteCredentials
    }

    func sites(account: String, context: TaskContext) async throws -> [Site] {
        let administration = self.administration
        return try await context.database.run { connection in
            try administration.sites(account: account, on: connection).map { record in
                let secret = record.hasSecret ? try administration.siteSecret(site: record.id, on: connection) : nil
                let stored =
                    record.hasStoredIdentity || record.hasStoredKnownHosts
                    ? try administration.siteKeys(site: record.id, on: connection) : StoredSiteKeys()
                let url = try BackupSiteURL(parsing: record.url)
                let keyLogin = record.identityFile != nil || stored.identity != nil
                return Site(
                    record: record, url: url,
                    credentials: SiteCredentials(
                        identityFile: record.identityFile, identityPassphrase: keyLogin ? secret : nil,
                        password: keyLogin ? nil : secret, knownHostsFile: record.knownHostsFile,
                        identity: stored.identity, knownHosts: stored.knownHosts))
            }
        }
    }

    /// Uploads every file to every site that does not hold it yet. Files missing from this
    /// worker's spool, or held there with another size or SHA-256 than packing recorded, are
    /// fetched back from a site that holds them first. False when the job was sent back to
    /// packing as the next generation, under new names (the current files are superseded):
    /// a file is in no spool and on no site as recorded.
    private func upload(_ job: ArchiveJob, context: TaskContext, logger: Logger) async throws -> Bool {
        let jobs = self.jobs
        let (files, done) = try await context.database.run { connection in
            (try jobs.files(job: job.id, on: connection), try jobs.uploaded(job: job.id, on: connection))
        }
        let sites = try await sites(account: job.accountID, context: context)
        guard !sites.isEmpty else {
            throw ArchiveJobError("account \"\(job.accountID)\" has no backup site: nothing can be uploaded")
        }
        let directory = packer.directory(for: job)
        // The spool is a cache: a copy that is not what packing recorded is discarded, never uploaded.
        let (missing, removed) = try await DedicatedThread.run(name: "lethe-spool-check") {
            try Self.checkSpool(files, in: directory)
        }
        for line in removed { logger.warning("\(line)") }
        if !missing.isEmpty {
            if done.isEmpty {
                // Not under the same names: a site may hold a file whose upload was not recorded
                // (a crash between its rename and the record), and a new file of the same name
                // and size would count as uploaded there without being it. Only while every site
                // answers: during an outage each retry on another host would add a generation.
                let timeout = settings.siteTimeout
                try await DedicatedThread.run(name: "lethe-site-check") {
                    for site in sites {
                        try BackupSites.open(site.url, credentials: site.credentials, timeout: timeout).close()
                    }
                }
                logger.warning(
                    """
                    archive files are missing from the spool directory \(directory) of this worker before any \
                    recorded upload: packing again as generation \(job.generation + 1), under new names
                    """)
                try await context.database.run { _ = try jobs.supersede(job, on: $0) }
                return false
            }
            guard let wanted = Self.holders(of: missing, sites: sites, done: done) else {
                let lost = missing.first { file in !sites.contains { done.contains([file.id, $0.record.id]) } }!
                logger.warning(
                    """
                    archive file \(lost.name) is missing from the spool directory \(directory) of this worker and no \
                    backup site holds it, while sites hold other files of the job: packing again as generation \
                    \(job.generation + 1); the files of generation \(job.generation) are superseded
                    """)
                try await context.database.run { _ = try jobs.supersede(job, on: $0) }
                return false
            }
            let timeout = settings.siteTimeout
            let (fetched, refused) = try await DedicatedThread.run(name: "lethe-fetch") {
                try Self.fetch(wanted, into: directory, timeout: timeout)
            }
            for line in refused { logger.warning("\(line)") }
            logger.notice("archive files fetched back into the spool, SHA-256 verified: \(fetched)")
        }
        let (timeout, attempts) = (settings.siteTimeout, settings.uploadAttempts)
        var failure: (any Error)?
        for site in sites {
            let pending = files.filter { !done.contains([$0.id, site.record.id]) }
            guard !pending.isEmpty else { continue }
            let (results, cleanUp) = try await DedicatedThread.run(name: "lethe-upload") {
                Self.upload(pending, from: directory, to: site, timeout: timeout, attempts: attempts)
            }
            switch cleanUp {
            case .success(let names) where !names.isEmpty:
                logger.notice("removed \(names.count) abandoned temporary file(s) from \(site.url): \(names)")
            case .failure(let error): logger.warning("could not look for abandoned uploads on \(site.url): \(error)")
            default: break
            }
            try await context.database.run { connection in
                for (file, result) in results {
                    switch result {
                    case .success(let size):
                        try jobs.recordUpload(file: file, site: site.record.id, size: size, on: connection)
                    case .failure(let error):
                        try jobs.recordUploadFailure(
                            file: file, site: site.record.id, error: "\(site.url): \(error)", on: connection)
                    }
                }
            }
            for (_, result) in results {
                context.recordUpload(siteKind: site.url.scheme.metricName, succeeded: (try? result.get()) != nil)
                if case .failure(let error) = result {
                    logger.warning("upload to \(site.url) failed: \(error)")
                    failure = failure ?? error
                }
            }
            if context.leaseLost { throw CancellationError() }
        }
        if let failure { throw failure }  // retried with backoff; the backup log shows upload_failed meanwhile
        try await context.database.run { try jobs.recordUploaded(job, on: $0) }
        logger.info("archive uploaded to \(sites.count) site(s)")
        return true
    }

    /// On the upload thread: one session to the site for every pending file.
    /// Also removes, once per run, the temporary files that uploads which died left on the site
    /// (`abandonedUploadAge` untouched); the second result is what that found.
    static func upload(
        _ files: [ArchiveFileRecord], from directory: String, to site: Site, timeout: Duration, attempts: Int
    ) -> ([(Int64, Result<Int64, ArchiveUploadFailure>)], Result<[String], ArchiveUploadFailure>) {
        var out: [(Int64, Result<Int64, ArchiveUploadFailure>)] = []
        var cleanUp: Result<[String], ArchiveUploadFailure>?
        var connection: (any BackupSite)?
        defer { connection?.close() }
        for file in files {
            var lastError: (any Error)?
            var size: Int64?
            do {
                size = try uploadRetry.run(attempts: max(attempts, 1)) {
                    do {
                        if connection == nil {
                            connection = try BackupSites.open(site.url, credentials: site.credentials, timeout: timeout)
                            if cleanUp == nil {
                                cleanUp = Result {
                                    try connection!.removeAbandonedUploads(olderThan: abandonedUploadAge)
                                }
                                .mapError { ArchiveUploadFailure("\($0)") }
                            }
                        }
                        return try connection!.upload(localFile: "\(directory)/\(file.name)", name: file.name)
                    } catch {
                        connection?.close()
                        connection = nil
                        throw error
                    }
                }
            } catch {
                lastError = error
            }
            if let size, size == file.size ?? size {
                out.append((file.id, .success(size)))
            } else if let size {
                out.append(
                    (
                        file.id,
                        .failure(ArchiveUploadFailure("the site holds \(size) bytes, expected \(file.size ?? 0)"))
                    ))
            } else {
                out.append((file.id, .failure(ArchiveUploadFailure("\(lastError.map { "\($0)" } ?? "upload failed")"))))
            }
        }
        return (out, cleanUp ?? .success([]))
    }

    /// The wait between attempts of one file's upload: 0.5 s, doubling, at most 10 s.
    static let uploadRetry = RetryPolicy(base: .milliseconds(500), maximum: .seconds(10), jitter: 0)

    /// How long a temporary file on a backup site must have been left untouched before an
    /// upload run removes it as abandoned. A live upload writes every moment; the hour also
    /// absorbs a lag of the site's clock behind the worker's of up to an hour.
    static let abandonedUploadAge: Duration = .seconds(3600)

    /// What `verifySites` found.
    enum SiteCheck { case complete, reuploading, movedOn }

    /// Checks that every current site holds every file with its recorded size. When some
    /// copies are gone, forgets them and sends the job back to uploading (`.reuploading`),
    /// unless it left `uploaded` meanwhile (`.movedOn`: another worker has it).
    private func verifySites(_ job: ArchiveJob, context: TaskContext, logger: Logger) async throws -> SiteCheck {
        let jobs = self.jobs
        let (files, done) = try await context.database.run { connection in
            (try jobs.files(job: job.id, on: connection), try jobs.uploaded(job: job.id, on: connection))
        }
        let sites = try await sites(account: job.accountID, context: context)
        guard !sites.isEmpty else { throw ArchiveJobError("account \"\(job.accountID)\" has no backup site") }
        let timeout = settings.siteTimeout
        var missing: [(file: Int64, site: Int64)] = []
        for site in sites {
            let held = try await DedicatedThread.run(name: "lethe-verify") { () throws -> [Int64: Int64?] in
                let connection = try BackupSites.open(site.url, credentials: site.credentials, timeout: timeout)
                defer { connection.close() }
                var sizes: [Int64: Int64?] = [:]
                for file in files { sizes[file.id] = try connection.size(of: file.name) }
                return sizes
            }
            for file in files {
                let size = held[file.id] ?? nil
                if size != file.size || !done.contains([file.id, site.record.id]) {
                    logger.warning("\(site.url) does not hold \(file.name) as uploaded")
                    missing.append((file.id, site.record.id))
                }
            }
        }
        if missing.isEmpty { return .complete }
        let found = missing
        let moved = try await context.database.run { try jobs.reupload(job, missing: found, on: $0) }
        return moved ? .reuploading : .movedOn
    }

    // MARK: - Delete

    enum DeletionOutcome { case finished, yielded }

    /// How long a stopped deletion (a hold, a paused account) waits before it looks again.
    static let recheck: TimeInterval = 3600

    private func delete(
        _ job: ArchiveJob, task: ClaimedTask, context: TaskContext, logger: Logger
    ) async throws -> DeletionOutcome {
        let jobs = self.jobs
        let (id, worker) = (task.id, context.workerID)
        let (files, progress) = try await context.database.run {
            (try jobs.files(job: job.id, on: $0), try jobs.deletionProgress(job, on: $0))
        }
        guard let archive = files.first?.id else { throw ArchiveJobError("archive job \(job.id) has no files") }
        try await removeSuperseded(job, context: context, logger: logger)
        var deleted = 0
        do {
            // Each type (then each blob store) resumes after the last batch that committed.
            for type in jobs.types where type.type.deletes && progress[type.name] != .done {
                let outcome = try await deleteBatches(
                    job, from: progress[type.name], of: type.name, context: context, logger: logger, deleted: &deleted
                ) { cursor, connection in
                    let batch = try jobs.deleteBatch(
                        job, type: type, after: cursor, archive: archive, task: id, worker: worker, on: connection)
                    return switch batch.status {
                    case .stopped(let reason): (batch.result.totalRows, nil, reason)
                    case .deleted(let next): (batch.result.totalRows, next, nil)
                    }
                }
                if let outcome { return outcome }
            }
            // Then the archived blobs nothing references any more (the orphans the job took).
            for store in jobs.registry.blobStores.values.sorted(by: { $0.store.name < $1.store.name })
            where progress[ArchiveJobs.blobProgressKey(store)] != .done {
                let outcome = try await deleteBatches(
                    job, from: progress[ArchiveJobs.blobProgressKey(store)], of: store.store.name, context: context,
                    logger: logger, deleted: &deleted
                ) { cursor, connection in
                    try jobs.deleteBlobBatch(
                        job, store: store, after: cursor, archive: archive, task: id, worker: worker, on: connection)
                }
                if let outcome { return outcome }
            }
        } catch let error as CancellationError {
            throw error
        } catch let error as ArchiveDeletionMoved {
            // Another worker committed that batch: not a failure; the next claim reads the progress.
            logger.notice("\(error)")
            return .yielded
        } catch {
            try? await context.database.run { try jobs.recordDeleteFailure(job, error: "\(error)", on: $0) }
            throw error
        }
        let note = try await context.database.run { try jobs.recordDeleted(job, on: $0) }
        if !settings.keepLocal { try? FileManager.default.removeItem(atPath: packer.directory(for: job)) }
        logger.info("archived rows deleted: \(deleted) rows\(note.map { "; \($0)" } ?? "")")
        return .finished
    }

    /// Deletes batch after batch of one entity type or blob store, each after the cursor the
    /// last one committed (`progress`), adding the rows to `deleted`. Nil once none is left;
    /// `.finished` when a batch stops the deletion (the job sleeps until `recheck`);
    /// `.yielded` when the task should give its slot back.
    private func deleteBatches(
        _ job: ArchiveJob, from progress: DeletionProgress?, of name: String, context: TaskContext, logger: Logger,
        deleted: inout Int,
        _ batch:
            @escaping @Sendable (_ after: String?, Connection) throws -> (
                deleted: Int, nextAfter: String?, stopped: String?
            )
    ) async throws -> DeletionOutcome? {
        let jobs = self.jobs
        var after: String? = if case .after(let key) = progress { key } else { nil }
        repeat {
            if context.leaseLost { throw CancellationError() }
            let cursor = after
            let step = try await context.database.run { try batch(cursor, $0) }
            if let reason = step.stopped {
                try await context.database.run {
                    // Nothing to wait for when another worker took the job on meanwhile.
                    guard try jobs.pauseDeletion(job, note: "deletion stopped: \(reason)", on: $0) else { return }
                    try jobs.sleep(job, until: Date() + Self.recheck, note: "deletion stopped: \(reason)", on: $0)
                }
                logger.notice("archive deletion stopped: \(reason)")
                return .finished
            }
            deleted += step.deleted
            context.recordDeleted(rows: step.deleted, entityType: name)
            after = step.nextAfter
            if after != nil, context.shouldYield { return .yielded }
        } while after != nil
        return nil
    }
}

/// Why one upload failed (safe to log and store: no secrets).
struct ArchiveUploadFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension BackupSiteURL.Scheme {
    /// The `site_kind` label of `lethe_uploads_total`.
    var metricName: String {
        switch self {
        case .sftp: return "sftp"
        case .file: return "file"
        }
    }
}
