-- migrate:up
-- 0018: planning without a foreign-key check per manifest row (issue 18). The foreign keys
-- from lethe.archive_manifest and lethe.archive_manifest_blobs to lethe.archive_jobs ran a
-- trigger and a row lock for every row planned: on the bench's 692,307 message rows the
-- insert took 13.8 s with the key and 8.8 s without. Every statement that adds manifest rows
-- runs in a planning step that holds the job's row FOR UPDATE (ArchiveJobs.planStep), so the
-- job exists and cannot go while they are written; the keys checked nothing more. What their
-- ON DELETE CASCADE did, removing a job's manifest with the job, the trigger below does once
-- per statement (and per TRUNCATE).
DO $$
DECLARE fk record;
BEGIN
    FOR fk IN
        SELECT c.conrelid::regclass AS table_name, c.conname FROM pg_constraint c
        WHERE c.contype = 'f' AND c.confrelid = 'lethe.archive_jobs'::regclass
          AND c.conrelid IN ('lethe.archive_manifest'::regclass, 'lethe.archive_manifest_blobs'::regclass)
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.table_name, fk.conname);
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION lethe.archive_jobs_drop_manifest() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE lethe.archive_manifest, lethe.archive_manifest_blobs;
    ELSE
        DELETE FROM lethe.archive_manifest m USING old_jobs o WHERE m.job_id = o.job_id;
        DELETE FROM lethe.archive_manifest_blobs m USING old_jobs o WHERE m.job_id = o.job_id;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION lethe.archive_jobs_drop_manifest() IS
    'Removes the manifest of deleted archive jobs (what the foreign keys'' ON DELETE CASCADE did before 0018)';
DROP TRIGGER IF EXISTS archive_jobs_drop_manifest ON lethe.archive_jobs;
CREATE TRIGGER archive_jobs_drop_manifest AFTER DELETE ON lethe.archive_jobs
    REFERENCING OLD TABLE AS old_jobs FOR EACH STATEMENT EXECUTE FUNCTION lethe.archive_jobs_drop_manifest();
DROP TRIGGER IF EXISTS archive_jobs_truncate_manifest ON lethe.archive_jobs;
CREATE TRIGGER archive_jobs_truncate_manifest AFTER TRUNCATE ON lethe.archive_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION lethe.archive_jobs_drop_manifest();
