-- migrate:up
-- 0004: archive before delete. Per-account archive settings (the archive key sealed under
-- the operator's master key), backup sites, the daily archive jobs, their manifests (the
-- rows an archive holds, recorded before anything is written), the archive files (the
-- backup log) and their uploads per site.
--
-- The invariant: for an account with archiving on, retention tasks delete nothing; only
-- the archive job deletes, and only rows of its manifest whose current content still
-- hashes as archived, after every configured site holds the file. See docs/archives.md.

-- ---------------------------------------------------------------------------
-- Settings and sites.

CREATE TABLE IF NOT EXISTS lethe.archive_settings (
    account_id       text        PRIMARY KEY REFERENCES lethe.accounts ON DELETE CASCADE,
    enabled          boolean     NOT NULL DEFAULT false,
    sealed_key       bytea,      -- AES-GCM (master key) of the archive key; never the key itself
    master_key_id    text,       -- which master key sealed it (a fingerprint, not the key)
    schedule_hour    smallint    NOT NULL DEFAULT 2 CHECK (schedule_hour BETWEEN 0 AND 23),   -- UTC
    auto_delete      boolean     NOT NULL DEFAULT false,
    auto_delete_hour smallint    NOT NULL DEFAULT 4 CHECK (auto_delete_hour BETWEEN 0 AND 23), -- UTC
    require_download boolean     NOT NULL DEFAULT false,  -- delete only after the sites confirm they pulled the files
    next_run_at      timestamptz,                          -- the next daily job
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT enabled OR sealed_key IS NOT NULL)
);
COMMENT ON TABLE lethe.archive_settings IS
    'Per account: archiving on/off, the sealed archive key, the daily schedule hour and auto-delete (hours in UTC)';

CREATE TABLE IF NOT EXISTS lethe.backup_sites (
    site_id          bigserial   PRIMARY KEY,
    account_id       text        NOT NULL REFERENCES lethe.accounts ON DELETE CASCADE,
    url              text        NOT NULL,   -- sftp://user@host:port/path or file:///path (no password)
    identity_file    text,                   -- SSH private key (ed25519/ECDSA) on the worker hosts
    sealed_secret    bytea,                  -- AES-GCM (master key): the password or the key's passphrase
    known_hosts_file text,                   -- OpenSSH known_hosts on the worker hosts
    added_at         timestamptz NOT NULL DEFAULT now(),
    removed_at       timestamptz,
    CHECK (url ~ '^(sftp://[^/@:]+@[^/]+/|file:///)')
);
CREATE UNIQUE INDEX IF NOT EXISTS backup_sites_url_key ON lethe.backup_sites (account_id, url) WHERE removed_at IS NULL;
COMMENT ON TABLE lethe.backup_sites IS 'Where an account''s archives go; every current site must hold a file before deletion';

-- ---------------------------------------------------------------------------
-- Jobs, manifests, files, uploads.

CREATE TABLE IF NOT EXISTS lethe.archive_jobs (
    job_id       uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id   text        NOT NULL REFERENCES lethe.accounts ON DELETE CASCADE,
    due_at       timestamptz NOT NULL,   -- the schedule slot (idempotent per account and slot)
    state        text        NOT NULL DEFAULT 'planning'
                 CHECK (state IN ('planning', 'packing', 'uploading', 'uploaded', 'deleting', 'deleted')),
    cutoffs      jsonb,                  -- per entity type: cutoff and interval in force when planned
    counts       jsonb,                  -- per entity type and table: rows in the manifest
    wake_at      timestamptz DEFAULT now(),  -- when the leader enqueues the account's archive task; NULL: waits
    delete_at    timestamptz,            -- auto-delete time, once every site holds every file
    approved_at  timestamptz,
    approved_by  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    planned_at   timestamptz,
    packed_at    timestamptz,
    uploaded_at  timestamptz,
    deleted_at   timestamptz,
    note         text,                   -- why deletion waits or stopped (hold, rows kept)
    UNIQUE (account_id, due_at)
);
CREATE INDEX IF NOT EXISTS archive_jobs_wake_idx ON lethe.archive_jobs (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS archive_jobs_open_idx ON lethe.archive_jobs (account_id) WHERE state <> 'deleted';
COMMENT ON TABLE lethe.archive_jobs IS 'The daily retention job per account: plan, pack, upload, delete';

-- The rows an archive holds, recorded before anything is written. row_hash is the md5 of
-- the row's JSON as archived (set in the packing transaction, from the same snapshot as
-- the archived JSON); deletion compares it with the row's current JSON.
CREATE TABLE IF NOT EXISTS lethe.archive_manifest (
    job_id      uuid     NOT NULL REFERENCES lethe.archive_jobs ON DELETE CASCADE,
    entity_type text     NOT NULL,
    table_index smallint NOT NULL,   -- 0: the root table; children in pre-order
    row_key     text     NOT NULL,
    root_key    text     NOT NULL,
    row_hash    text,
    PRIMARY KEY (job_id, entity_type, table_index, row_key)
);
CREATE INDEX IF NOT EXISTS archive_manifest_row_idx ON lethe.archive_manifest (entity_type, table_index, row_key);
CREATE INDEX IF NOT EXISTS archive_manifest_root_idx ON lethe.archive_manifest (job_id, entity_type, root_key);
COMMENT ON TABLE lethe.archive_manifest IS 'Rows each archive job holds (keys and content hashes): only these are deleted';

CREATE TABLE IF NOT EXISTS lethe.archive_manifest_blobs (
    job_id   uuid NOT NULL REFERENCES lethe.archive_jobs ON DELETE CASCADE,
    store    text NOT NULL,
    blob_key text NOT NULL,
    row_hash text,
    PRIMARY KEY (job_id, store, blob_key)
);
COMMENT ON TABLE lethe.archive_manifest_blobs IS 'Blobs each archive job holds';

CREATE TABLE IF NOT EXISTS lethe.archive_files (
    id            bigserial   PRIMARY KEY,
    job_id        uuid        NOT NULL REFERENCES lethe.archive_jobs ON DELETE CASCADE,
    account_id    text        NOT NULL,
    part          integer     NOT NULL CHECK (part >= 1),
    file_name     text        NOT NULL UNIQUE,
    status        text        NOT NULL DEFAULT 'archiving'
                  CHECK (status IN ('archiving', 'uploading', 'uploaded', 'downloaded', 'deleting', 'deleted',
                                    'upload_failed', 'delete_failed')),
    total_size    bigint,
    entries       integer,      -- files inside the ZIP (records, blobs, manifest.json)
    records       bigint,       -- JSON records inside
    sha256        text,         -- of the whole file
    error         text,
    attempts      integer     NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    packed_at     timestamptz,
    uploaded_at   timestamptz,
    downloaded_at timestamptz,
    deleted_at    timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, part)
);
CREATE INDEX IF NOT EXISTS archive_files_account_idx ON lethe.archive_files (account_id, created_at);
COMMENT ON TABLE lethe.archive_files IS 'One row per archive file: the table behind lethe.backup_log';

CREATE TABLE IF NOT EXISTS lethe.archive_uploads (
    file_id     bigint      NOT NULL REFERENCES lethe.archive_files ON DELETE CASCADE,
    site_id     bigint      NOT NULL REFERENCES lethe.backup_sites,
    status      text        NOT NULL CHECK (status IN ('uploaded', 'failed')),
    size        bigint,
    error       text,
    attempts    integer     NOT NULL DEFAULT 1,
    verified_at timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (file_id, site_id)
);
COMMENT ON TABLE lethe.archive_uploads IS 'Per archive file and backup site: uploaded (size verified) or failed';

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'deletion_records_archive_fk') THEN
        ALTER TABLE lethe.deletion_records
            ADD CONSTRAINT deletion_records_archive_fk FOREIGN KEY (archive_id) REFERENCES lethe.archive_files (id)
            ON DELETE SET NULL;
    END IF;
END $$;

-- ---------------------------------------------------------------------------
-- Retention status: with archiving on, retention tasks delete nothing (the archive job
-- does, after the upload). policy_runnable is what the policy alone allows.

CREATE OR REPLACE VIEW lethe.retention_status AS
SELECT a.account_id,
       t.name AS entity_type,
       a.state AS account_state,
       a.tier,
       p.retention AS account_interval,
       ti.retention AS tier_interval,
       least(greatest(coalesce(p.retention, ti.retention), t.min_interval), t.max_interval) AS effective_interval,
       CASE WHEN p.retention IS NOT NULL THEN 'account'
            WHEN ti.retention IS NOT NULL THEN 'tier'
            ELSE 'none' END AS interval_source,
       lethe.cutoff(now(), least(greatest(coalesce(p.retention, ti.retention), t.min_interval), t.max_interval))
           AS cutoff,
       t.deletes,
       CASE WHEN NOT t.active THEN 'entity type no longer configured'
            WHEN a.state <> 'active' THEN 'account ' || a.state
            WHEN a.retention_disabled THEN 'retention disabled for the account by an operator'
            WHEN coalesce(p.operator_disabled, false) THEN 'policy disabled by an operator'
            WHEN NOT coalesce(p.enabled, true) THEN 'policy disabled by the tenant'
            WHEN coalesce(p.retention, ti.retention) IS NULL THEN 'no policy: no own interval and no tier interval'
            WHEN NOT t.deletes THEN 'keep-only type: never deleted'
            WHEN coalesce(st.enabled, false) THEN 'archiving on: the archive job deletes after every backup site holds the archive'
       END AS blocked_reason,
       (t.active AND a.state = 'active' AND NOT a.retention_disabled AND NOT coalesce(p.operator_disabled, false)
        AND coalesce(p.enabled, true) AND coalesce(p.retention, ti.retention) IS NOT NULL AND t.deletes
        AND NOT coalesce(st.enabled, false)) AS runnable,
       h.id IS NOT NULL AS held,
       h.reason AS hold_reason,
       a.notice,
       CASE a.notice WHEN 'week' THEN now() + interval '7 days'
                     WHEN 'day' THEN now() + interval '1 day'
                     WHEN 'same_day' THEN (date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC'
       END AS notice_horizon,
       t.check_interval,
       t.lanes,
       r.next_run_at,
       r.last_enqueued_at,
       coalesce(st.enabled, false) AS archiving,
       (t.active AND a.state = 'active' AND NOT a.retention_disabled AND NOT coalesce(p.operator_disabled, false)
        AND coalesce(p.enabled, true) AND coalesce(p.retention, ti.retention) IS NOT NULL AND t.deletes)
           AS policy_runnable
FROM lethe.accounts a
CROSS JOIN lethe.entity_types t
LEFT JOIN lethe.policies p ON p.account_id = a.account_id AND p.entity_type = t.name
LEFT JOIN lethe.tier_intervals ti ON ti.tier = a.tier AND ti.entity_type = t.name
LEFT JOIN lethe.archive_settings st ON st.account_id = a.account_id
LEFT JOIN LATERAL (
    SELECT hd.id, hd.reason FROM lethe.holds hd
    WHERE hd.account_id = a.account_id AND (hd.entity_type IS NULL OR hd.entity_type = t.name)
      AND hd.released_at IS NULL AND (hd.until IS NULL OR hd.until > now())
    ORDER BY hd.id LIMIT 1
) h ON true
LEFT JOIN lethe.retention_runs r ON r.kind = 'retention' AND r.account_id = a.account_id AND r.subject = t.name;

-- ---------------------------------------------------------------------------
-- Views.

CREATE OR REPLACE VIEW lethe.backup_log AS
SELECT f.id, f.account_id, f.job_id, f.part, f.created_at, f.file_name, f.total_size, f.entries AS number_of_files,
       f.records, f.status, f.sha256,
       coalesce((SELECT array_agg(s.url ORDER BY s.site_id) FROM lethe.archive_uploads u
                 JOIN lethe.backup_sites s ON s.site_id = u.site_id
                 WHERE u.file_id = f.id AND u.status = 'uploaded'), '{}') AS sites,
       (SELECT count(*) FROM lethe.backup_sites s WHERE s.account_id = f.account_id AND s.removed_at IS NULL)
           AS sites_configured,
       coalesce(f.error, j.note) AS error, f.attempts,
       j.state AS job_state, j.delete_at, j.approved_at, f.packed_at, f.uploaded_at, f.downloaded_at, f.deleted_at
FROM lethe.archive_files f
JOIN lethe.archive_jobs j ON j.job_id = f.job_id;
COMMENT ON VIEW lethe.backup_log IS
    'One row per archive file: created at, name, size, files inside, records, status, the sites holding it, error';

CREATE OR REPLACE VIEW lethe.archive_status AS
SELECT a.account_id, coalesce(st.enabled, false) AS enabled, st.sealed_key IS NOT NULL AS has_key,
       st.schedule_hour, st.auto_delete, st.auto_delete_hour, st.require_download, st.next_run_at,
       (SELECT count(*) FROM lethe.backup_sites s WHERE s.account_id = a.account_id AND s.removed_at IS NULL) AS sites,
       (SELECT count(*) FROM lethe.archive_jobs j WHERE j.account_id = a.account_id AND j.state <> 'deleted')
           AS open_jobs,
       (SELECT max(f.uploaded_at) FROM lethe.archive_files f WHERE f.account_id = a.account_id) AS last_upload,
       (SELECT count(*) FROM lethe.archive_files f WHERE f.account_id = a.account_id
                                                    AND f.status IN ('upload_failed', 'delete_failed')) AS failed_files
FROM lethe.accounts a
LEFT JOIN lethe.archive_settings st ON st.account_id = a.account_id;
COMMENT ON VIEW lethe.archive_status IS
    'Per account: archiving on/off, key present, schedule, auto-delete, sites, open jobs, last upload, failed files';

-- ---------------------------------------------------------------------------
-- Schedules: the next time it is `hour` o'clock in UTC, strictly after `after`.

CREATE OR REPLACE FUNCTION lethe.next_utc_hour(hour integer, after timestamptz DEFAULT now()) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE
RETURN (SELECT CASE WHEN (d AT TIME ZONE 'UTC') > after THEN d AT TIME ZONE 'UTC'
                    ELSE (d + interval '1 day') AT TIME ZONE 'UTC' END
        FROM (SELECT date_trunc('day', after AT TIME ZONE 'UTC') + hour * interval '1 hour' AS d) x);
COMMENT ON FUNCTION lethe.next_utc_hour(integer, timestamptz) IS
    'The next time it is hour:00 in UTC after the given time: daily archive jobs and auto-delete';

-- ---------------------------------------------------------------------------
-- Functions for operators and backup sites: approve a deletion, confirm a download.

CREATE OR REPLACE FUNCTION lethe.approve_archive_deletion(file_id bigint) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    job uuid;
BEGIN
    SELECT f.job_id INTO job FROM lethe.archive_files f WHERE f.id = file_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no archive file %', file_id USING ERRCODE = 'no_data_found';
    END IF;
    UPDATE lethe.archive_jobs j SET approved_at = coalesce(j.approved_at, now()), approved_by = session_user,
           wake_at = now()
    WHERE j.job_id = job AND j.state <> 'deleted';
    RETURN job;
END $$;

CREATE OR REPLACE FUNCTION lethe.confirm_archive_download(file_id bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    current_status text;
BEGIN
    SELECT f.status INTO current_status FROM lethe.archive_files f WHERE f.id = file_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no archive file %', file_id USING ERRCODE = 'no_data_found';
    END IF;
    IF current_status NOT IN ('uploaded', 'downloaded') THEN
        RAISE EXCEPTION 'archive file % is %: only an uploaded file can be confirmed as downloaded',
            file_id, current_status USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE lethe.archive_files f SET status = 'downloaded', downloaded_at = coalesce(f.downloaded_at, now()),
           updated_at = now()
    WHERE f.id = file_id;
    UPDATE lethe.archive_jobs j SET wake_at = now() FROM lethe.archive_files f
    WHERE f.id = file_id AND j.job_id = f.job_id AND j.state = 'uploaded';
    RETURN 'downloaded';
END $$;

-- An archive job now, besides the daily one (the leader enqueues its task on the next tick).
CREATE OR REPLACE FUNCTION lethe.start_archive_job(account text) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    job uuid;
BEGIN
    PERFORM lethe.require_account(account);
    IF NOT EXISTS (SELECT 1 FROM lethe.archive_settings s WHERE s.account_id = account AND s.enabled) THEN
        RAISE EXCEPTION 'archiving is off for account "%"', account USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'turn it on first: lethe account archive ACCOUNT --enable';
    END IF;
    INSERT INTO lethe.archive_jobs (account_id, due_at) VALUES (account, clock_timestamp()) RETURNING job_id INTO job;
    RETURN job;
END $$;

-- Puts failed files back: their job is picked up again on the leader's next tick.
CREATE OR REPLACE FUNCTION lethe.retry_archive(file_id bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    f lethe.archive_files;
BEGIN
    SELECT * INTO f FROM lethe.archive_files WHERE id = file_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no archive file %', file_id USING ERRCODE = 'no_data_found';
    END IF;
    IF f.status NOT IN ('upload_failed', 'delete_failed') THEN
        RAISE EXCEPTION 'archive file % is %: only upload_failed and delete_failed files are retried', file_id, f.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE lethe.archive_files SET status = CASE status WHEN 'upload_failed' THEN 'uploading' ELSE 'deleting' END,
           updated_at = now()
    WHERE job_id = f.job_id AND status IN ('upload_failed', 'delete_failed');
    UPDATE lethe.archive_jobs SET wake_at = now() WHERE job_id = f.job_id;
    RETURN CASE f.status WHEN 'upload_failed' THEN 'uploading' ELSE 'deleting' END;
END $$;

REVOKE ALL ON FUNCTION lethe.approve_archive_deletion(bigint), lethe.confirm_archive_download(bigint),
    lethe.start_archive_job(text), lethe.retry_archive(bigint) FROM PUBLIC;

DO $$
BEGIN
    IF (SELECT count(*) FROM pg_roles WHERE rolname IN ('lethe_tenant_admin', 'lethe_operator')) < 2 THEN
        RETURN;
    END IF;
    EXECUTE $grants$
        GRANT EXECUTE ON FUNCTION lethe.approve_archive_deletion(bigint), lethe.confirm_archive_download(bigint),
            lethe.start_archive_job(text), lethe.retry_archive(bigint) TO lethe_operator;
        GRANT SELECT ON lethe.archive_settings, lethe.backup_sites, lethe.archive_jobs, lethe.archive_manifest,
            lethe.archive_manifest_blobs, lethe.archive_files, lethe.archive_uploads, lethe.backup_log,
            lethe.archive_status, lethe.retention_status TO lethe_operator;
    $grants$;
END $$;
