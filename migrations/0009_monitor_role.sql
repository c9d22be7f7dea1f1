-- migrate:up
-- 0009: lethe_monitor, a read-only role that reads every view in schema lethe (the backlog
-- and upcoming deletions included) without SELECT on the application's tables, for
-- dashboards, `lethe status --check` probes and scrapers.
--
-- lethe.retention_backlog and lethe.upcoming_deletions call functions that run the SQL Lethe
-- generated per entity type (lethe.entity_types.backlog_sql / upcoming_sql) over the
-- application's tables. They ran as the caller, who then needed SELECT on those tables; they
-- now run as their owner (SECURITY DEFINER) with a fixed search_path, and only roles granted
-- EXECUTE may call them. What keeps that safe:
--   * they take no argument: a caller chooses nothing they run;
--   * the text they run is written only by the schema's owner (registry sync; never grant
--     INSERT or UPDATE on lethe.entity_types to anyone else), and everything in it is
--     schema-qualified;
--   * they are STABLE: PostgreSQL refuses INSERT, UPDATE, DELETE and DDL inside them;
--   * EXECUTE is revoked from PUBLIC and granted to lethe_monitor only (and lethe_operator
--     through membership). A runtime role other than the schema's owner needs lethe_monitor too.

ALTER FUNCTION lethe.retention_backlog_rows() SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off;
ALTER FUNCTION lethe.upcoming_deletion_rows() SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off;
REVOKE ALL ON FUNCTION lethe.retention_backlog_rows(), lethe.upcoming_deletion_rows() FROM PUBLIC;

-- Cost (BENCHMARKS.md, "Backlog views"): on 10,000 accounts x 8 deleting types,
-- retention_backlog took 66-97 s, nearly all of it in lethe.interval_is_positive, which
-- retention_status calls several times per (account, type): STRICT kept PostgreSQL from
-- inlining it, and extract() computes numerics. The same test, inlinable (a NULL argument
-- still gives NULL: every comparison with NULL is NULL) and on date_part's doubles (the
-- same signs), and the backlog's queries without JIT (each of the 9 compiled for ~80 ms):
-- 6 s.
CREATE OR REPLACE FUNCTION lethe.interval_is_positive(keep interval) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN keep > interval '0'
   AND date_part('year', keep) >= 0 AND date_part('month', keep) >= 0 AND date_part('day', keep) >= 0
   AND date_part('hour', keep) >= 0 AND date_part('minute', keep) >= 0 AND date_part('microseconds', keep) >= 0;

-- Archive jobs not finished, for `lethe status --check` (a job that has not reached
-- `uploaded` long after it was created is stuck) and dashboards, without reading the table.
CREATE OR REPLACE VIEW lethe.open_archive_jobs AS
SELECT j.job_id, j.account_id, j.state, j.due_at, j.created_at, now() - j.created_at AS age, j.wake_at,
       j.delete_at, j.approved_at, j.note,
       (SELECT count(*) FROM lethe.archive_files f WHERE f.job_id = j.job_id) AS files,
       (SELECT count(*) FROM lethe.archive_files f
        WHERE f.job_id = j.job_id AND f.status IN ('upload_failed', 'delete_failed')) AS failed_files
FROM lethe.archive_jobs j
WHERE j.state <> 'deleted';
COMMENT ON VIEW lethe.open_archive_jobs IS
    'Archive jobs not yet deleted: state, age, when they wake, files and failed files, why deletion waits';

-- The role is cluster-wide: created once, tolerating a concurrent migration of another
-- database doing the same. Without CREATEROLE the migration still applies, with a warning:
-- a superuser creates the role and the schema's owner then grants it (the recipe below).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lethe_monitor') THEN
        BEGIN
            CREATE ROLE lethe_monitor NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE WARNING 'cannot create role lethe_monitor (no CREATEROLE); as a superuser run '
                    '"CREATE ROLE lethe_monitor NOLOGIN;", then as the owner of schema lethe '
                    '"SELECT lethe.grant_monitor();"';
        END;
    END IF;
END $$;

-- Grants lethe_monitor what it reads: USAGE on schema lethe, SELECT on every view in it and
-- EXECUTE on the two functions above; makes lethe_operator a member. Idempotent; returns the
-- number of views granted (0, with a warning, while the role does not exist). A migration
-- that adds a view calls it again. Runs as its caller: only the schema's owner (or a
-- superuser) can grant.
CREATE OR REPLACE FUNCTION lethe.grant_monitor() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    view regclass;
    granted integer := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lethe_monitor') THEN
        RAISE WARNING 'role lethe_monitor does not exist: as a superuser run "CREATE ROLE lethe_monitor NOLOGIN;", '
            'then "SELECT lethe.grant_monitor();" again';
        RETURN 0;
    END IF;
    EXECUTE 'GRANT USAGE ON SCHEMA lethe TO lethe_monitor';
    FOR view IN SELECT c.oid::regclass FROM pg_class c
                WHERE c.relnamespace = 'lethe'::regnamespace AND c.relkind IN ('v', 'm') ORDER BY c.relname LOOP
        EXECUTE format('GRANT SELECT ON %s TO lethe_monitor', view);
        granted := granted + 1;
    END LOOP;
    EXECUTE 'GRANT EXECUTE ON FUNCTION lethe.retention_backlog_rows(), lethe.upcoming_deletion_rows() TO lethe_monitor';
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lethe_operator')
       AND NOT pg_has_role('lethe_operator', 'lethe_monitor', 'MEMBER') THEN
        BEGIN
            EXECUTE 'GRANT lethe_monitor TO lethe_operator';
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'cannot make lethe_operator a member of lethe_monitor (no CREATEROLE or ADMIN OPTION); '
                'as a superuser run "GRANT lethe_monitor TO lethe_operator;"';
        END;
    END IF;
    RETURN granted;
END $$;
REVOKE ALL ON FUNCTION lethe.grant_monitor() FROM PUBLIC;
COMMENT ON FUNCTION lethe.grant_monitor() IS
    'Grants role lethe_monitor SELECT on every view in schema lethe and EXECUTE on the backlog functions';

SELECT lethe.grant_monitor();
