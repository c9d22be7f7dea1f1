-- migrate:up
-- 0008: entity types that left the configuration keep protecting the blobs their rows
-- still reference until an operator forgets them (`lethe policy forget TYPE`); the key
-- columns of a type may be a list (stored comma-separated in key_column).
ALTER TABLE lethe.entity_types ADD COLUMN IF NOT EXISTS forgotten_at timestamptz;
ALTER TABLE lethe.entity_types ADD COLUMN IF NOT EXISTS forgotten_by text;

COMMENT ON COLUMN lethe.entity_types.forgotten_at IS
    'Set by lethe policy forget on an inactive type: its blob columns no longer count as references';
COMMENT ON COLUMN lethe.entity_types.key_column IS
    'The key columns as configured, comma-separated (the account column is added when the key is unique only per account)';

-- Blob columns taken out of a type that stays configured (a removed `blobs:` entry or
-- child table): they keep counting as references until the type is forgotten.
CREATE TABLE IF NOT EXISTS lethe.retired_references (
    entity_type  text        NOT NULL,
    store        text        NOT NULL,
    table_name   text        NOT NULL,
    column_name  text        NOT NULL,
    retired_at   timestamptz NOT NULL DEFAULT now(),
    forgotten_at timestamptz,
    PRIMARY KEY (entity_type, store, table_name, column_name)
);
COMMENT ON TABLE lethe.retired_references IS
    'Blob columns removed from a configured type: still references until lethe policy forget TYPE';

-- An operator forgets what left the configuration: a type that is gone (its rows' blob
-- columns no longer count as references), or the blob columns removed from a type that
-- stays. Refused when there is nothing to forget.
CREATE OR REPLACE FUNCTION lethe.forget_entity_type(type_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    found_type lethe.entity_types;
BEGIN
    SELECT * INTO found_type FROM lethe.entity_types e WHERE e.name = type_name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no entity type "%"; known: %', type_name,
            coalesce((SELECT string_agg(name, ', ' ORDER BY name) FROM lethe.entity_types), 'none')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE lethe.retired_references SET forgotten_at = now()
    WHERE entity_type = type_name AND forgotten_at IS NULL;
    IF found_type.active THEN
        IF NOT FOUND THEN
            RAISE EXCEPTION 'entity type "%" is still configured and no blob column was removed from it: nothing to forget',
                type_name USING ERRCODE = 'object_in_use';
        END IF;
        RETURN;
    END IF;
    UPDATE lethe.entity_types SET forgotten_at = coalesce(forgotten_at, now()), forgotten_by = session_user
    WHERE name = type_name;
END $$;

REVOKE ALL ON FUNCTION lethe.forget_entity_type(text) FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lethe_operator') THEN
        GRANT EXECUTE ON FUNCTION lethe.forget_entity_type(text) TO lethe_operator;
    END IF;
END $$;

-- A direct write to what decides deletion (a hold, a policy, archive settings) locks the
-- account row as the functions do, so it waits for a batch in flight and the next batch
-- sees it: the functions are not the only way in for the schema's owner.
CREATE OR REPLACE FUNCTION lethe.lock_account_of_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM lethe.accounts a
    WHERE a.account_id IN (CASE WHEN TG_OP <> 'INSERT' THEN OLD.account_id END,
                           CASE WHEN TG_OP <> 'DELETE' THEN NEW.account_id END)
    ORDER BY a.account_id
    FOR UPDATE;
    RETURN coalesce(NEW, OLD);
END $$;

DROP TRIGGER IF EXISTS holds_lock_account ON lethe.holds;
CREATE TRIGGER holds_lock_account BEFORE INSERT OR UPDATE OR DELETE ON lethe.holds
    FOR EACH ROW EXECUTE FUNCTION lethe.lock_account_of_change();
DROP TRIGGER IF EXISTS policies_lock_account ON lethe.policies;
CREATE TRIGGER policies_lock_account BEFORE INSERT OR UPDATE OR DELETE ON lethe.policies
    FOR EACH ROW EXECUTE FUNCTION lethe.lock_account_of_change();
DROP TRIGGER IF EXISTS archive_settings_lock_account ON lethe.archive_settings;
CREATE TRIGGER archive_settings_lock_account BEFORE INSERT OR UPDATE OR DELETE ON lethe.archive_settings
    FOR EACH ROW EXECUTE FUNCTION lethe.lock_account_of_change();
