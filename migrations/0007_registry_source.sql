-- migrate:up
-- The entity-type registry in force: the `entity_types:` and `blob_stores:` sections of the
-- configuration that last synced it, as text. Only `lethe coordinator`, `lethe run` and
-- `lethe policy sync` write it (with lethe.entity_types and lethe.blob_stores, in one
-- transaction); every other command reads the registry from here, never from its own file.
-- One row per sync that changed the text, so the history of who changed what stays; the
-- newest row is the registry in force.
CREATE TABLE IF NOT EXISTS lethe.registry_source (
    id          bigserial   PRIMARY KEY,
    source      text        NOT NULL,   -- YAML: the entity_types and blob_stores sections
    sha256      text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    config_path text,                   -- the file it came from, as the syncing process named it
    synced_by   text        NOT NULL,   -- the command: coordinator, run, policy sync
    synced_host text        NOT NULL,
    changes     text[]      NOT NULL DEFAULT '{}',  -- what needed confirming, as the sync printed it
    confirmed   boolean     NOT NULL DEFAULT false,
    synced_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE lethe.registry_source IS
    'The entity-type registry in force (newest row) and its history; written only by the coordinator, lethe run '
    'and lethe policy sync';

CREATE OR REPLACE VIEW lethe.registry_in_force AS
SELECT id, sha256, config_path, synced_by, synced_host, synced_at, changes, confirmed, source
FROM lethe.registry_source
ORDER BY id DESC
LIMIT 1;
COMMENT ON VIEW lethe.registry_in_force IS 'The registry every Lethe command and worker reads: the newest sync';

DO $$
BEGIN
    IF (SELECT count(*) FROM pg_roles WHERE rolname IN ('lethe_tenant_admin', 'lethe_operator')) < 2 THEN
        RETURN;
    END IF;
    EXECUTE $grants$
        GRANT SELECT ON lethe.registry_source, lethe.registry_in_force TO lethe_operator;
    $grants$;
END $$;
