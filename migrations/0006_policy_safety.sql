-- migrate:up
-- 0006: policy and lock safety (issue 14, defects 2, 4, 7, 9).
--
-- * Intervals must be positive in every part: '-1200 mons 36031 days' compares as 31 days
--   but moves a cutoff 100 years into the future. Refused by the functions and by CHECK
--   constraints; bounds are checked by comparing cutoffs, not interval values; and
--   lethe.retention_status, where every batch, preview and archive job takes its cutoff,
--   never gives one later than now minus the type's minimum.
-- * An account id must be the canonical text of every account column's type ('01' would
--   alias account 1 on a bigint column).
-- * Every function that narrows what may be deleted locks the account row(s) FOR UPDATE
--   first; batches lock the account FOR SHARE and read the status in a later statement
--   (a fresh snapshot), so a batch that waited on such a change sees it.
-- * An operator's re-enable leaves the tenant's own switch alone.

-- ---------------------------------------------------------------------------
-- Positive intervals and the one cutoff.

-- extract() keeps each field's sign (years and months from the month field, day from the
-- day field, hour/minute/microseconds from the time field), so a negative part shows.
CREATE OR REPLACE FUNCTION lethe.interval_is_positive(keep interval) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN keep > interval '0'
   AND extract(year FROM keep) >= 0 AND extract(month FROM keep) >= 0 AND extract(day FROM keep) >= 0
   AND extract(hour FROM keep) >= 0 AND extract(minute FROM keep) >= 0 AND extract(microseconds FROM keep) >= 0;
COMMENT ON FUNCTION lethe.interval_is_positive(interval) IS
    'True when the interval is above zero and no part of it (months, days, time) is negative';

-- The cutoff a batch, preview or archive job uses: at minus keep, but never later than at
-- minus the type's minimum (a month is not always 30 days), and none for an interval that
-- is not positive.
CREATE OR REPLACE FUNCTION lethe.retention_cutoff(at timestamptz, keep interval, minimum interval)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN lethe.interval_is_positive(keep) AND lethe.interval_is_positive(minimum)
            THEN least(lethe.cutoff(at, keep), lethe.cutoff(at, minimum)) END;
COMMENT ON FUNCTION lethe.retention_cutoff(timestamptz, interval, interval) IS
    'The earlier of the cutoffs of keep and of the minimum; NULL unless both are positive intervals';

-- ---------------------------------------------------------------------------
-- Constraints: a direct INSERT or UPDATE cannot store what the functions refuse. Rows
-- stored before this migration are not deleted or changed: if one breaks a rule, its
-- constraint stays NOT VALID (enforced for new rows), a warning names it, and
-- retention_status blocks the account's type until the interval is set again.

ALTER TABLE lethe.policies
    ADD CONSTRAINT policies_retention_positive CHECK (lethe.interval_is_positive(retention)) NOT VALID;
ALTER TABLE lethe.tier_intervals
    ADD CONSTRAINT tier_intervals_retention_positive CHECK (lethe.interval_is_positive(retention)) NOT VALID;
ALTER TABLE lethe.entity_types
    ADD CONSTRAINT entity_types_intervals_positive
    CHECK (lethe.interval_is_positive(default_interval) AND lethe.interval_is_positive(min_interval)
           AND lethe.interval_is_positive(max_interval)) NOT VALID;

DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM (VALUES ('policies', 'policies_retention_positive'),
                                   ('tier_intervals', 'tier_intervals_retention_positive'),
                                   ('entity_types', 'entity_types_intervals_positive')) v(tab, con) LOOP
        BEGIN
            EXECUTE format('ALTER TABLE lethe.%I VALIDATE CONSTRAINT %I', c.tab, c.con);
        EXCEPTION WHEN check_violation THEN
            RAISE WARNING 'lethe.% holds intervals that are not positive: constraint % stays NOT VALID; '
                'retention_status blocks them until they are set again', c.tab, c.con;
        END;
    END LOOP;
END $$;

-- Bounds: not positive is refused; a cutoff earlier than the maximum's is refused; one
-- later than the minimum's is raised to the minimum (and reported).
CREATE OR REPLACE FUNCTION lethe.bounded_interval(t lethe.entity_types, asked interval, OUT effective interval,
                                                  OUT raised_to_minimum boolean)
LANGUAGE plpgsql AS $$
DECLARE
    asked_cutoff timestamptz;
BEGIN
    IF asked IS NULL OR NOT lethe.interval_is_positive(asked) THEN
        RAISE EXCEPTION 'interval % for % is not allowed; expected a positive interval with no negative part, '
            'between % and %', coalesce(asked::text, 'NULL'), t.name, t.min_interval, t.max_interval
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    BEGIN
        asked_cutoff := lethe.cutoff(now(), asked);
    EXCEPTION WHEN datetime_field_overflow THEN
        asked_cutoff := '-infinity';
    END;
    IF asked_cutoff < lethe.cutoff(now(), t.max_interval) THEN
        RAISE EXCEPTION 'interval % for % is above the maximum %', asked, t.name, t.max_interval
            USING ERRCODE = 'invalid_parameter_value', HINT = format('choose at most %s', t.max_interval);
    END IF;
    raised_to_minimum := asked_cutoff > lethe.cutoff(now(), t.min_interval);
    effective := CASE WHEN raised_to_minimum THEN t.min_interval ELSE asked END;
    IF raised_to_minimum THEN
        RAISE NOTICE 'interval % for % is below the minimum: raised to %', asked, t.name, t.min_interval;
    END IF;
END $$;

-- ---------------------------------------------------------------------------
-- Retention status: the same columns as before; the interval in force is clamped to the
-- type's bounds by comparing cutoffs (PostgreSQL compares `1 year` as 360 days, so a value
-- clamp would turn a tenant's year into a 364-day minimum); cutoff is lethe.retention_cutoff
-- (never later than now minus the type's current minimum), and an interval that is not
-- positive gives no effective interval, no cutoff, and blocks with a reason.

CREATE OR REPLACE VIEW lethe.retention_status AS
SELECT a.account_id,
       t.name AS entity_type,
       a.state AS account_state,
       a.tier,
       p.retention AS account_interval,
       ti.retention AS tier_interval,
       x.effective AS effective_interval,
       CASE WHEN p.retention IS NOT NULL THEN 'account'
            WHEN ti.retention IS NOT NULL THEN 'tier'
            ELSE 'none' END AS interval_source,
       lethe.retention_cutoff(now(), x.effective, t.min_interval) AS cutoff,
       t.deletes,
       CASE WHEN NOT t.active THEN 'entity type no longer configured'
            WHEN a.state <> 'active' THEN 'account ' || a.state
            WHEN a.retention_disabled THEN 'retention disabled for the account by an operator'
            WHEN coalesce(p.operator_disabled, false) THEN 'policy disabled by an operator'
            WHEN NOT coalesce(p.enabled, true) THEN 'policy disabled by the tenant'
            WHEN x.stored IS NULL THEN 'no policy: no own interval and no tier interval'
            WHEN x.effective IS NULL THEN format('interval %s (%s) or the type''s bounds %s … %s are not positive: '
                                                 'set the interval again', x.stored,
                                                 CASE WHEN p.retention IS NOT NULL THEN 'account' ELSE 'tier' END,
                                                 t.min_interval, t.max_interval)
            WHEN NOT t.deletes THEN 'keep-only type: never deleted'
            WHEN coalesce(st.enabled, false) THEN 'archiving on: the archive job deletes after every backup site holds the archive'
       END AS blocked_reason,
       (t.active AND a.state = 'active' AND NOT a.retention_disabled AND NOT coalesce(p.operator_disabled, false)
        AND coalesce(p.enabled, true) AND x.effective IS NOT NULL AND t.deletes
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
        AND coalesce(p.enabled, true) AND x.effective IS NOT NULL AND t.deletes) AS policy_runnable
FROM lethe.accounts a
CROSS JOIN lethe.entity_types t
LEFT JOIN lethe.policies p ON p.account_id = a.account_id AND p.entity_type = t.name
LEFT JOIN lethe.tier_intervals ti ON ti.tier = a.tier AND ti.entity_type = t.name
LEFT JOIN lethe.archive_settings st ON st.account_id = a.account_id
CROSS JOIN LATERAL (
    SELECT s.stored,
           CASE WHEN lethe.interval_is_positive(s.stored) AND lethe.interval_is_positive(t.min_interval)
                     AND lethe.interval_is_positive(t.max_interval)
                THEN CASE WHEN lethe.cutoff(now(), s.stored) > lethe.cutoff(now(), t.min_interval) THEN t.min_interval
                          WHEN lethe.cutoff(now(), s.stored) < lethe.cutoff(now(), t.max_interval) THEN t.max_interval
                          ELSE s.stored END
           END AS effective
    FROM (SELECT coalesce(p.retention, ti.retention) AS stored) s
) x
LEFT JOIN LATERAL (
    SELECT hd.id, hd.reason FROM lethe.holds hd
    WHERE hd.account_id = a.account_id AND (hd.entity_type IS NULL OR hd.entity_type = t.name)
      AND hd.released_at IS NULL AND (hd.until IS NULL OR hd.until > now())
    ORDER BY hd.id LIMIT 1
) h ON true
LEFT JOIN lethe.retention_runs r ON r.kind = 'retention' AND r.account_id = a.account_id AND r.subject = t.name;
COMMENT ON VIEW lethe.retention_status IS
    'Per account and entity type: the interval in force and where it comes from, the cutoff (never later than now '
    'minus the type''s minimum), and whether retention runs (and why not)';
COMMENT ON COLUMN lethe.retention_status.cutoff IS
    'lethe.retention_cutoff(now(), effective_interval, min_interval): what every batch, preview and archive job uses';

-- ---------------------------------------------------------------------------
-- Account ids: the canonical text of every account column's type. A cast and back must
-- give the same text ('01' on bigint is 1's alias, an upper-case uuid another spelling of
-- the lower-case one) and a varchar(n) must not truncate (an explicit cast does, silently).

CREATE OR REPLACE FUNCTION lethe.account_id_problem(account text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    type_name text;
    canonical text;
    length_limit integer;
BEGIN
    FOR type_name IN SELECT DISTINCT account_type FROM lethe.entity_types WHERE active
                     UNION SELECT DISTINCT account_type FROM lethe.blob_stores WHERE active
                     ORDER BY 1 LOOP
        BEGIN
            EXECUTE format('SELECT CAST(CAST($1 AS %s) AS text)', type_name) INTO canonical USING account;
        EXCEPTION WHEN data_exception THEN
            RETURN format('account id "%s" is not a valid %s (the type of the application''s account columns)',
                          account, type_name);
        END;
        length_limit := substring(type_name FROM '^(?:character varying|character|bit varying|bit)\((\d+)\)$')::integer;
        IF length_limit IS NOT NULL AND char_length(account) > length_limit THEN
            RETURN format('account id "%s" is longer than %s allows (%s characters at most)',
                          account, type_name, length_limit);
        END IF;
        IF canonical IS DISTINCT FROM account THEN
            RETURN format('account id "%s" is not written as %s writes it (the type of the application''s account '
                          'columns): did you mean "%s"?', account, type_name, canonical);
        END IF;
    END LOOP;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION lethe.account_id_problem(text) IS
    'Why an account id is not the canonical text of every active account column type, or NULL when it is';

CREATE OR REPLACE FUNCTION lethe.accounts_canonical_id() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    problem text := lethe.account_id_problem(NEW.account_id);
BEGIN
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION '%', problem USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER accounts_canonical_id BEFORE INSERT OR UPDATE OF account_id ON lethe.accounts
    FOR EACH ROW EXECUTE FUNCTION lethe.accounts_canonical_id();

CREATE OR REPLACE FUNCTION lethe.add_account(account text, tier text DEFAULT NULL, notice text DEFAULT 'week')
RETURNS SETOF lethe.accounts
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    problem text := lethe.account_id_problem(account);
BEGIN
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION '%', problem USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF tier IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lethe.tiers t WHERE t.name = tier) THEN
        RAISE EXCEPTION 'no tier "%"; defined: %', tier,
            coalesce((SELECT string_agg(name, ', ' ORDER BY name) FROM lethe.tiers), 'none')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO lethe.accounts (account_id, tier, notice) VALUES (account, tier, notice);
    -- Without a tier, the account keeps every type's default in force today; later changes
    -- of defaults leave it alone. With a tier, the tier governs until the account sets its own.
    IF tier IS NULL THEN
        INSERT INTO lethe.policies (account_id, entity_type, retention)
        SELECT account, t.name, t.default_interval FROM lethe.entity_types t WHERE t.active;
    END IF;
    RETURN QUERY SELECT * FROM lethe.accounts a WHERE a.account_id = account;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'account "%" already exists', account USING ERRCODE = 'unique_violation';
END $$;

-- Accounts added before this migration are left alone; the ones that break the rule are named.
DO $$
DECLARE
    problems text;
BEGIN
    SELECT string_agg(p, '; ' ORDER BY p) INTO problems
    FROM (SELECT lethe.account_id_problem(a.account_id) AS p FROM lethe.accounts a) x WHERE p IS NOT NULL;
    IF problems IS NOT NULL THEN
        RAISE WARNING 'accounts whose ids may alias others: %', problems;
    END IF;
END $$;

-- ---------------------------------------------------------------------------
-- Locks. A batch takes the account row FOR SHARE in one statement and reads
-- retention_status in the next: whatever narrows deletion locks the row FOR UPDATE first,
-- so a batch in flight finishes before the change, and a batch that waited sees it.

CREATE OR REPLACE FUNCTION lethe.require_account(account text) RETURNS lethe.accounts
LANGUAGE plpgsql AS $$
DECLARE
    found_account lethe.accounts;
BEGIN
    -- FOR UPDATE: conflicts with the FOR SHARE lock every deleting batch takes first.
    SELECT * INTO found_account FROM lethe.accounts a WHERE a.account_id = account FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no account "%"', account USING ERRCODE = 'no_data_found',
            HINT = 'add it first: lethe.add_account(account) or `lethe account add`';
    END IF;
    RETURN found_account;
END $$;

CREATE OR REPLACE FUNCTION lethe.place_hold(account text, entity_type text, reason text,
                                            until timestamptz DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    id bigint;
BEGIN
    -- The account lock waits for a batch in flight (which may still commit, before the
    -- hold); a batch that starts later waits for this transaction and then sees the hold.
    PERFORM lethe.require_account(account);
    IF entity_type IS NOT NULL THEN PERFORM lethe.require_entity_type(entity_type); END IF;
    IF reason IS NULL OR btrim(reason) = '' THEN
        RAISE EXCEPTION 'a hold needs a reason' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF until IS NOT NULL AND until <= now() THEN
        RAISE EXCEPTION 'hold end % is in the past', until USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO lethe.holds (account_id, entity_type, reason, until, placed_by)
    VALUES (account, entity_type, reason, until, session_user) RETURNING holds.id INTO id;
    RETURN id;
END $$;

CREATE OR REPLACE FUNCTION lethe.release_hold(hold_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    account text;
BEGIN
    SELECT h.account_id INTO account FROM lethe.holds h WHERE h.id = hold_id AND h.released_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no active hold %', hold_id USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM lethe.require_account(account);
    UPDATE lethe.holds SET released_at = now(), released_by = session_user
    WHERE id = hold_id AND released_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no active hold %', hold_id USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM lethe.runs_due_now(account);
END $$;

-- A tier's interval governs every account of the tier: lock them all (in key order, as
-- assign_tier does) before the change.
CREATE OR REPLACE FUNCTION lethe.set_tier_interval(tier text, entity_type text, retention interval,
                                                   OUT effective interval, OUT raised_to_minimum boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t lethe.entity_types := lethe.require_entity_type(entity_type);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM lethe.tiers WHERE name = tier) THEN
        RAISE EXCEPTION 'no tier "%"; define it first', tier USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT b.effective, b.raised_to_minimum INTO effective, raised_to_minimum FROM lethe.bounded_interval(t, retention) b;
    PERFORM 1 FROM lethe.accounts a WHERE a.tier = set_tier_interval.tier ORDER BY a.account_id FOR UPDATE;
    INSERT INTO lethe.tier_intervals AS ti (tier, entity_type, retention) VALUES (tier, t.name, effective)
    ON CONFLICT ON CONSTRAINT tier_intervals_pkey DO UPDATE SET retention = EXCLUDED.retention;
    UPDATE lethe.retention_runs r SET next_run_at = now()
    FROM lethe.accounts a WHERE a.tier = set_tier_interval.tier AND r.account_id = a.account_id AND r.subject = t.name
      AND r.next_run_at > now();
END $$;

CREATE OR REPLACE FUNCTION lethe.assign_tier(tier text, accounts text[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    missing text;
    changed integer;
BEGIN
    IF tier IS NOT NULL AND NOT EXISTS (SELECT 1 FROM lethe.tiers WHERE name = tier) THEN
        RAISE EXCEPTION 'no tier "%"; define it first', tier USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT string_agg(x, ', ') INTO missing FROM unnest(accounts) x
    WHERE NOT EXISTS (SELECT 1 FROM lethe.accounts a WHERE a.account_id = x);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'no such accounts: %', missing USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM 1 FROM lethe.accounts a WHERE a.account_id = ANY(accounts) ORDER BY a.account_id FOR UPDATE;
    UPDATE lethe.accounts a SET tier = assign_tier.tier, updated_at = now()
    WHERE a.account_id = ANY(accounts) AND a.tier IS DISTINCT FROM assign_tier.tier;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END $$;

-- ---------------------------------------------------------------------------
-- The operator's switch and the tenant's are independent: re-enabling what the operator
-- disabled leaves the tenant's own "off" in place.

CREATE OR REPLACE FUNCTION lethe.operator_set_policy_disabled(account text, entity_type text, disabled boolean,
                                                              reason text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t lethe.entity_types := lethe.require_entity_type(entity_type);
BEGIN
    PERFORM lethe.require_account(account);
    INSERT INTO lethe.policies AS p (account_id, entity_type, operator_disabled, operator_reason, updated_at, updated_by)
    VALUES (account, t.name, disabled, CASE WHEN disabled THEN reason END, now(), session_user)
    ON CONFLICT ON CONSTRAINT policies_pkey DO UPDATE
    SET operator_disabled = EXCLUDED.operator_disabled, operator_reason = EXCLUDED.operator_reason,
        updated_at = now(), updated_by = session_user;
    PERFORM lethe.runs_due_now(account, t.name);
END $$;
