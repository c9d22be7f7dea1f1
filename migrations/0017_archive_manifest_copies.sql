-- migrate:up
-- 0017: how many identical rows an archive holds under one manifest key. A child table without
-- a key of its own (a join table) names its rows by their parent's key and the md5 of their
-- content, so two identical rows share one manifest row. Deletion compared each row with its
-- key and hash only: a third identical row inserted after packing matched too and went with
-- the two the archive holds. The packer now records, in each part's transaction, how many
-- lines it wrote for each such key when more than one; deletion spares a root under which a
-- key has more rows now than the archive holds.
ALTER TABLE lethe.archive_manifest ADD COLUMN IF NOT EXISTS copies integer;
ALTER TABLE lethe.archive_manifest DROP CONSTRAINT IF EXISTS archive_manifest_copies_check;
ALTER TABLE lethe.archive_manifest ADD CONSTRAINT archive_manifest_copies_check CHECK (copies IS NULL OR copies > 1) NOT VALID;
-- NOT VALID: the column is new and NULL everywhere; validating would scan the whole manifest
-- under an exclusive lock. The check holds for every row written from here on.
COMMENT ON COLUMN lethe.archive_manifest.copies IS
    'Identical rows the archive holds under this key when more than one (a keyless join table); NULL: one';
