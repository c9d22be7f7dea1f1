-- migrate:up
-- 0014: archive planning in bounded transactions (issue 18). A job's manifest is recorded in
-- chunks of `archive.plan_chunk_roots` roots, each chunk its own short transaction; this column
-- holds where the next chunk starts, so a crashed or lost worker resumes after the last chunk
-- that committed instead of planning the whole job again. NULL: planning has not started (or
-- the job was planned in one transaction before 0014).
ALTER TABLE lethe.archive_jobs ADD COLUMN IF NOT EXISTS plan_progress jsonb;
COMMENT ON COLUMN lethe.archive_jobs.plan_progress IS
    'Planning progress per entity type: the keyset cursor after the last planned root (after), roots planned, and whether the type is done';
