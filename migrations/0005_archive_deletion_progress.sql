-- migrate:up
-- Deletion progress of an archive job, committed by each deletion batch in its own
-- transaction: a task that yields or dies resumes after the last batch that committed,
-- instead of walking the job's manifest from its first key again.
ALTER TABLE lethe.archive_jobs
    ADD COLUMN IF NOT EXISTS delete_cursor jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN IF NOT EXISTS spared_roots bigint NOT NULL DEFAULT 0;

COMMENT ON COLUMN lethe.archive_jobs.delete_cursor IS
    'Per entity type (or "blobs:STORE"): the last manifest key a deletion batch handled, or true once the type is done';
COMMENT ON COLUMN lethe.archive_jobs.spared_roots IS
    'Roots the deletion kept because a row under them changed or arrived since they were archived';
