import Foundation
import Postgres

/// One sample of `lethe bench soak`: the processes' resident sets from /proc and the
/// database's figures from one query (connections, queue depth, sizes, dead tuples, WAL
/// position, retention backlog, open archive jobs, rows deleted).
enum SoakSampler {
    /// The database columns, in the order `query` returns them.
    static let databaseColumns = [
        "connections", "queue_due", "queue_running", "app_table_mb", "app_index_mb", "lethe_table_mb",
        "lethe_index_mb", "app_dead_tuples", "lethe_dead_tuples", "app_live_tuples", "retention_backlog_rows",
        "open_archive_jobs", "deleted_rows",
    ]

    static let query = """
        WITH sizes AS (
            SELECT n.nspname AS schema, sum(pg_table_size(c.oid)) AS tables, sum(pg_indexes_size(c.oid)) AS indexes
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname IN ('app', 'lethe') AND c.relkind IN ('r', 'p', 'm')
            GROUP BY n.nspname
        ), tuples AS (
            SELECT schemaname AS schema, sum(n_dead_tup) AS dead, sum(n_live_tup) AS live
            FROM pg_stat_user_tables WHERE schemaname IN ('app', 'lethe') GROUP BY schemaname
        )
        SELECT
            (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database())::float8,
            (SELECT coalesce(sum(due), 0) FROM lethe.queue_summary)::float8,
            (SELECT coalesce(sum(tasks), 0) FROM lethe.queue_summary WHERE state = 'running')::float8,
            (SELECT coalesce(sum(tables), 0) FROM sizes WHERE schema = 'app')::float8 / 1e6,
            (SELECT coalesce(sum(indexes), 0) FROM sizes WHERE schema = 'app')::float8 / 1e6,
            (SELECT coalesce(sum(tables), 0) FROM sizes WHERE schema = 'lethe')::float8 / 1e6,
            (SELECT coalesce(sum(indexes), 0) FROM sizes WHERE schema = 'lethe')::float8 / 1e6,
            (SELECT coalesce(sum(dead), 0) FROM tuples WHERE schema = 'app')::float8,
            (SELECT coalesce(sum(dead), 0) FROM tuples WHERE schema = 'lethe')::float8,
            (SELECT coalesce(sum(live), 0) FROM tuples WHERE schema = 'app')::float8,
            (SELECT coalesce(sum(expired_rows), 0) FROM lethe.retention_backlog WHERE runnable AND NOT held)::float8,
            (SELECT count(*) FROM lethe.open_archive_jobs)::float8,
            (SELECT coalesce(sum(total_rows + blob_rows), 0) FROM lethe.deletion_log)::float8,
            (pg_current_wal_lsn() - '0/0'::pg_lsn)::float8
        """

    /// The database figures (`databaseColumns`) and the WAL position in bytes.
    static func database(on connection: Connection) throws -> (values: [Double], wal: Double) {
        let row = try connection.query(query)[0]
        let values = try (0..<databaseColumns.count).map { try row.decode(Double.self, at: $0) }
        return (values, try row.decode(Double.self, at: databaseColumns.count))
    }

    /// VmRSS of a process in MB, from /proc/PID/status; 0 once it is gone.
    static func residentMB(_ pid: Int32) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kib = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) })
        else { return 0 }
        return kib / 1024
    }
}
