-- migrate:up
-- 0011: SFTP identities and known_hosts lines stored in the database, sealed under the master key
-- like passwords (`lethe account site add --identity F --known-hosts F` reads the files once),
-- so no worker host needs per-site files. Sites added before keep their paths
-- (identity_file, known_hosts_file), which workers read when these columns are null.
ALTER TABLE lethe.backup_sites ADD COLUMN IF NOT EXISTS sealed_identity bytea;
ALTER TABLE lethe.backup_sites ADD COLUMN IF NOT EXISTS sealed_known_hosts bytea;
COMMENT ON COLUMN lethe.backup_sites.sealed_identity IS
    'AES-GCM (master key), bound to the site: the SSH private key file''s contents; identity_file then only says where it was read from';
COMMENT ON COLUMN lethe.backup_sites.sealed_known_hosts IS
    'AES-GCM (master key), bound to the site: the known_hosts lines; known_hosts_file then only says where they were read from';
