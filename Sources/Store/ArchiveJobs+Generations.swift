import Foundation
import Postgres
import Retention

/// A job packed again after files were lost (in no spool, and on no site as recorded): the
/// next generation's files get new names, and the superseded files leave the sites only after
/// every current site holds every file of the new generation (docs/archives.md).
extension ArchiveJobs {
    /// In one transaction: the job's current files become `superseded` and the job goes back
    /// to packing as the next generation. A no-op (false) unless the job is still uploading
    /// generation `job.generation`: another worker got there first.
    public func supersede(_ job: ArchiveJob, on connection: Connection) throws -> Bool {
        try connection.withTransaction { connection in
            let current = try connection.query(
                """
                SELECT \(ArchiveJobEvent.supersede.leaves("state")) AND generation = $2
                FROM lethe.archive_jobs WHERE job_id = $1 FOR UPDATE
                """, [job.id, job.generation]
            ).first?.decode(Bool.self, at: 0)
            guard current == true else { return false }
            try connection.execute(
                """
                UPDATE lethe.archive_files SET status = \(ArchiveFileEvent.supersede.targetSQL), superseded_at = now(),
                    updated_at = now()
                WHERE job_id = $1 AND generation = $2 AND \(ArchiveFileEvent.supersede.leaves("status"))
                """, [job.id, job.generation])
            try connection.execute(
                """
                UPDATE lethe.archive_jobs SET state = \(ArchiveJobEvent.supersede.targetSQL), generation = generation + 1,
                    note = 'packing again as generation ' || (generation + 1) || ': files were lost'
                WHERE job_id = $1
                """, [job.id])
            return true
        }
    }

    /// The job's superseded files not yet removed from every site, but only once every current
    /// site holds every file of the current generation (recorded, size verified); empty before.
    /// Never the files of a generation under which rows were deleted (the deletion log names
    /// one of its files): a later generation is packed from the database and cannot hold those
    /// rows, so these files stay their only copy.
    public func supersededToRemove(_ job: ArchiveJob, on connection: Connection) throws -> [ArchiveFileRecord] {
        try connection.query(
            """
            SELECT f.id, f.part, f.file_name, f.status, f.total_size, f.sha256 FROM lethe.archive_files f
            WHERE f.job_id = $1 AND f.status = \(StateSQL.literal(ArchiveFileState.superseded)) AND f.removed_at IS NULL
              AND NOT EXISTS (SELECT 1 FROM lethe.deletion_records d JOIN lethe.archive_files g ON g.id = d.archive_id
                              WHERE d.account_id = f.account_id AND g.job_id = f.job_id AND g.generation = f.generation)
              AND EXISTS (SELECT 1 FROM lethe.archive_jobs j
                          WHERE j.job_id = $1 AND j.state IN (\(StateSQL.literal(ArchiveJobState.uploaded)),
                                                              \(StateSQL.literal(ArchiveJobState.deleting))))
              AND NOT EXISTS (
                  SELECT 1 FROM lethe.archive_jobs j
                  JOIN lethe.archive_files c ON c.job_id = j.job_id AND c.generation = j.generation
                  JOIN lethe.backup_sites s ON s.account_id = j.account_id AND s.removed_at IS NULL
                  WHERE j.job_id = $1
                    AND NOT EXISTS (SELECT 1 FROM lethe.archive_uploads u
                                    WHERE u.file_id = c.id AND u.site_id = s.site_id AND u.status = 'uploaded'
                                      AND u.size = c.total_size))
            ORDER BY f.generation, f.part
            """, [job.id]
        ).map { row in
            let (id, part, name, status, size, sha) = try row.decode((Int64, Int, String, String, Int64?, String?).self)
            return ArchiveFileRecord(id: id, part: part, name: name, status: status, size: size, sha256: sha)
        }
    }

    /// A superseded file is gone from `site`: its upload record goes (the backup log's
    /// `sites` no longer lists the site).
    public func recordSupersededRemoved(file: Int64, site: Int64, on connection: Connection) throws {
        try connection.execute(
            """
            DELETE FROM lethe.archive_uploads u USING lethe.archive_files f
            WHERE u.file_id = $1 AND u.site_id = $2 AND f.id = u.file_id
              AND f.status = \(StateSQL.literal(ArchiveFileState.superseded))
            """, [file, site])
    }

    /// A superseded file is gone from every current site.
    public func recordSupersededRemoved(file: Int64, on connection: Connection) throws {
        try connection.execute(
            """
            UPDATE lethe.archive_files SET removed_at = now(), updated_at = now()
            WHERE id = $1 AND status = \(StateSQL.literal(ArchiveFileState.superseded))
            """, [file])
    }
}

/// The packing transaction found the job no longer packing the generation it packed: another
/// worker went on with it. The transaction rolls back; nothing is recorded.
public struct ArchiveJobMoved: Error, CustomStringConvertible {
    public var job: UUID
    public var generation: Int
    public var description: String {
        "archive job \(job) is no longer packing generation \(generation): another worker went on with it"
    }
}
