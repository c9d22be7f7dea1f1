import BackupSites
import Foundation
import Logging
import Store

/// The files of an earlier generation leave the sites once the new generation is everywhere.
extension ArchiveHandler {
    /// Removes the job's superseded files (and only those: names the backup log records for
    /// this job's earlier generations) from every current site, once the database records that
    /// every current site holds every file of the current generation. On each site the current
    /// files' sizes are checked again in the same session before anything is removed. A crash
    /// or a failing site leaves the rest for the next visit (the job does not delete its rows
    /// before this finished); a superseded file is gone from every site when `removed_at` is set.
    func removeSuperseded(_ job: ArchiveJob, context: TaskContext, logger: Logger) async throws {
        let jobs = self.jobs
        let (superseded, current) = try await context.database.run {
            (try jobs.supersededToRemove(job, on: $0), try jobs.files(job: job.id, on: $0))
        }
        guard !superseded.isEmpty else { return }
        let sites = try await sites(account: job.accountID, context: context)
        let timeout = settings.siteTimeout
        for site in sites {
            if context.leaseLost { throw CancellationError() }
            let (handled, foreign) = try await DedicatedThread.run(name: "lethe-supersede") {
                () throws -> ([Int64], [String]) in
                let connection = try BackupSites.open(site.url, credentials: site.credentials, timeout: timeout)
                defer { connection.close() }
                for file in current {
                    let size = try connection.size(of: file.name)
                    guard let size, size == file.size else {
                        throw ArchiveJobError(
                            "\(site.url) does not hold \(file.name) at its recorded size (\(size.map(String.init) ?? "absent")): "
                                + "the superseded files of job \(job.id) stay until it does")
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
                return (handled, foreign)
            }
            try await context.database.run { connection in
                for file in handled {
                    try jobs.recordSupersededRemoved(file: file, site: site.record.id, on: connection)
                }
            }
            if !foreign.isEmpty {
                logger.warning("left untouched on \(site.url), not of the size Lethe wrote: \(foreign)")
            }
            logger.notice(
                "removed the superseded archive files of job \(job.id) (before generation \(job.generation)) "
                    + "from \(site.url)")
        }
        try await context.database.run { connection in
            for file in superseded { try jobs.recordSupersededRemoved(file: file.id, on: connection) }
        }
    }
}
