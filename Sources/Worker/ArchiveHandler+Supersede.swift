import BackupSites
import Foundation
import Logging
import Postgres
import Store

/// The files of an earlier generation leave the sites once the new generation is everywhere.
extension ArchiveHandler {
    /// Removes the job's superseded files (and only those: names the backup log records for
    /// this job's earlier generations) from every current site, once the database records that
    /// every current site holds every file of the current generation. On each site the current
    /// files' sizes are checked again in the same session before anything is removed (a site
    /// lacking one is skipped, for the check before deletion to upload it again). A crash leaves
    /// the rest for the next visit; a site that cannot be reached fails the task, so the job's
    /// rows are not deleted before this ran. `removed_at` is set once every site is done.
    func removeSuperseded(_ job: ArchiveJob, context: TaskContext, logger: Logger) async throws {
        let jobs = self.jobs
        let (superseded, current) = try await context.database.run {
            (try jobs.supersededToRemove(job, on: $0), try jobs.files(job: job.id, on: $0))
        }
        guard !superseded.isEmpty else { return }
        let sites = try await sites(account: job.accountID, context: context)
        let timeout = settings.siteTimeout
        var complete = true
        for site in sites {
            if context.leaseLost { throw CancellationError() }
            let outcome = try await DedicatedThread.run(name: "lethe-supersede") {
                () throws -> Result<([Int64], [String]), ArchiveJobError> in
                let connection = try BackupSites.open(site.url, credentials: site.credentials, timeout: timeout)
                defer { connection.close() }
                for file in current {
                    let size = try connection.size(of: file.name)
                    guard let size, size == file.size else {
                        return .failure(
                            ArchiveJobError(
                                "\(site.url) does not hold \(file.name) at its recorded size (\(size.map { "\($0)" } ?? "absent")): "
                                    + "the superseded files of job \(job.id) stay there until it does"))
                    }
                }
                // A file of that name but another size is not the one Lethe wrote: left untouched.
                var handled: [Int64] = []
                var foreign: [String] = []
                for file in superseded {
                    if let size = try connection.size(of: file.name) {
                        if size == file.size { try connection.remove(file.name) } else { foreign.append(file.name) }
                    }
                    handled.append(file.id)
                }
                return .success((handled, foreign))
            }
            guard case .success(let done) = outcome else {
                // The check before deletion finds the missing copy and uploads it again; the
                // removal runs on a later visit.
                if case .failure(let error) = outcome { logger.warning("\(error)") }
                complete = false
                continue
            }
            let (handled, foreign) = done
            try await context.database.run { connection in
                for file in handled {
                    try jobs.recordSupersededRemoved(file: file, site: site.record.id, on: connection)
                }
            }
            if !foreign.isEmpty {
                logger.warning("left untouched on \(site.url), not of the size Lethe wrote: \(foreign)")
            }
            logger.notice(
                "removed the superseded archive files of job \(job.id) (before generation \(job.generation)) from \(site.url)"
            )
        }
        guard complete else { return }
        try await context.database.run { connection in
            for file in superseded { try jobs.recordSupersededRemoved(file: file.id, on: connection) }
        }
    }
}
