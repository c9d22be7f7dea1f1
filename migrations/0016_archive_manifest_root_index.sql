-- migrate:up
-- 0016: a cheaper manifest to plan into (issue 18). archive_manifest_row_idx indexed every
-- manifest row by (entity_type, table_index, row_key), but only planning's "no other open job
-- of the account holds this root" check looks rows up without a job, and only roots
-- (table_index 0). Every child row planned paid for an entry it never needed: on the bench's
-- 692,307 message rows the insert took 14.9 s with it and 11.6 s with this partial index.
CREATE INDEX IF NOT EXISTS archive_manifest_root_row_idx
    ON lethe.archive_manifest (entity_type, row_key) WHERE table_index = 0;
DROP INDEX IF EXISTS lethe.archive_manifest_row_idx;
COMMENT ON INDEX lethe.archive_manifest_root_row_idx IS
    'Roots by key across jobs: planning skips a root another open job of the account holds';
