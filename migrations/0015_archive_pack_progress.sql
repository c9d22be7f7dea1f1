-- migrate:up
-- 0015: archive packing in bounded transactions, one per part (issue 18). Each part of a job is
-- packed in its own REPEATABLE READ transaction that commits the part's backup-log row and the
-- position after it together; a crashed or lost worker resumes at that position instead of
-- packing the whole job again. One row per job that began packing; packers lock it, so two
-- workers never pack the same part at once.
CREATE TABLE IF NOT EXISTS lethe.archive_pack_progress (
    job_id      uuid    PRIMARY KEY REFERENCES lethe.archive_jobs ON DELETE CASCADE,
    generation  integer NOT NULL,
    cursor      jsonb,
    parts_begun bigint  NOT NULL DEFAULT 0 CHECK (parts_begun >= 0)
);
COMMENT ON TABLE lethe.archive_pack_progress IS
    'Where the next part of an archive job starts (cursor, for generation; NULL: from the beginning) and how many part transactions began (repeats after a crash included)';
COMMENT ON COLUMN lethe.archive_pack_progress.cursor IS
    'After the last committed part: its number, the export section and key to go on from (and a blob''s byte offset), or NULL';
COMMENT ON COLUMN lethe.archive_pack_progress.parts_begun IS
    'Part transactions begun for the job, all generations: more than the parts written means work a crash or a lost lease repeated';
