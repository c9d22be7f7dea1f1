-- migrate:up
-- 0013: archive generations. A job whose files are partly on the sites while another file is
-- lost everywhere (not in any worker's spool, held by no site) is packed again under new file
-- names (`_gN` after the stamp). The earlier files become `superseded` (kept in the backup log:
-- a delivered copy stays accepted by `lethe archive restore --key-file`) and are removed from
-- the sites only once every current site holds every file of the new generation.
ALTER TABLE lethe.archive_jobs ADD COLUMN IF NOT EXISTS generation integer NOT NULL DEFAULT 1;
COMMENT ON COLUMN lethe.archive_jobs.generation IS
    'The packing generation whose files the job uploads and deletes under (1, then one more per repack after a loss)';
ALTER TABLE lethe.archive_files ADD COLUMN IF NOT EXISTS generation integer NOT NULL DEFAULT 1;
COMMENT ON COLUMN lethe.archive_files.generation IS 'The packing generation that wrote the file (_gN in its name from 2 on)';
ALTER TABLE lethe.archive_files ADD COLUMN IF NOT EXISTS superseded_at timestamptz;
COMMENT ON COLUMN lethe.archive_files.superseded_at IS 'When a later generation replaced the file (status superseded)';
ALTER TABLE lethe.archive_files ADD COLUMN IF NOT EXISTS removed_at timestamptz;
COMMENT ON COLUMN lethe.archive_files.removed_at IS
    'When the superseded file was removed from every current site (after each held every file of the new generation)';

ALTER TABLE lethe.archive_files DROP CONSTRAINT IF EXISTS archive_files_job_id_part_key;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'archive_files_job_generation_part_key') THEN
        ALTER TABLE lethe.archive_files
            ADD CONSTRAINT archive_files_job_generation_part_key UNIQUE (job_id, generation, part);
    END IF;
END $$;

ALTER TABLE lethe.archive_files DROP CONSTRAINT IF EXISTS archive_files_status_check;
ALTER TABLE lethe.archive_files ADD CONSTRAINT archive_files_status_check
    CHECK (status IN ('archiving', 'uploading', 'uploaded', 'downloaded', 'deleting', 'deleted',
                      'upload_failed', 'delete_failed', 'superseded'));
