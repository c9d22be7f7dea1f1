-- migrate:up
-- 0010: a snapshot of lethe.retention_backlog that scrapers read in milliseconds, refreshed
-- by the leading coordinator every `coordinator.backlog_interval` (BENCHMARKS.md, "Backlog
-- views": the live view costs 6-30 s on 10,000 accounts; every dashboard, Prometheus scrape,
-- KEDA poll and `lethe status --check` probe paid it). lethe.retention_backlog stays live and
-- unchanged for exact answers.

-- The rows of lethe.retention_backlog as of the last refresh.
CREATE TABLE lethe.backlog_snapshot (
    account_id         text NOT NULL,
    entity_type        text NOT NULL,
    effective_interval interval,
    cutoff             timestamptz,
    expired_rows       bigint NOT NULL,
    oldest_clock       timestamptz,
    oldest_age         interval,
    behind_by          interval,
    runnable           boolean,
    blocked_reason     text,
    held               boolean,
    next_run_at        timestamptz,
    PRIMARY KEY (account_id, entity_type)
);

-- One row: when the snapshot was measured (NULL: never, or refreshing is off), at which
-- interval the leader refreshes it (0: off), how long the refresh took and who ran it.
CREATE TABLE lethe.backlog_refresh (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    measured_at      timestamptz,
    refresh_interval interval NOT NULL CHECK (refresh_interval >= interval '0'),
    duration         interval,
    pairs            integer,
    refreshed_by     uuid,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Replaces the snapshot with the live view in one transaction (readers keep the previous
-- contents until it commits: DELETE, not TRUNCATE, so no lock blocks them) and records it.
-- The row lock on lethe.backlog_refresh serialises two refreshers. Measured at the
-- transaction's start, which is when the live view's snapshot was taken. The caller bounds
-- it with statement_timeout and lock_timeout (Store's BacklogSnapshot does). Returns the
-- number of (account, type) rows.
CREATE OR REPLACE FUNCTION lethe.refresh_backlog_snapshot(every interval, process uuid DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    copied integer;
BEGIN
    IF every IS NULL OR every <= interval '0' THEN
        RAISE EXCEPTION 'refresh interval % is not positive', every USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO lethe.backlog_refresh AS r (refresh_interval) VALUES (every)
    ON CONFLICT (singleton) DO UPDATE SET refresh_interval = EXCLUDED.refresh_interval;  -- takes the row lock
    DELETE FROM lethe.backlog_snapshot;
    INSERT INTO lethe.backlog_snapshot
        (account_id, entity_type, effective_interval, cutoff, expired_rows, oldest_clock, oldest_age, behind_by,
         runnable, blocked_reason, held, next_run_at)
    SELECT b.account_id, b.entity_type, b.effective_interval, b.cutoff, b.expired_rows, b.oldest_clock, b.oldest_age,
           b.behind_by, b.runnable, b.blocked_reason, b.held, b.next_run_at
    FROM lethe.retention_backlog b;
    GET DIAGNOSTICS copied = ROW_COUNT;
    UPDATE lethe.backlog_refresh
    SET measured_at = transaction_timestamp(), duration = clock_timestamp() - transaction_timestamp(),
        pairs = copied, refreshed_by = process, updated_at = clock_timestamp();
    RETURN copied;
END $$;
REVOKE ALL ON FUNCTION lethe.refresh_backlog_snapshot(interval, uuid) FROM PUBLIC;

-- Records that the leader does not refresh (coordinator.backlog_interval 0) and empties the
-- snapshot, so readers use the live view instead of calling it stale.
CREATE OR REPLACE FUNCTION lethe.disable_backlog_snapshot(process uuid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO lethe.backlog_refresh AS r (refresh_interval) VALUES (interval '0')
    ON CONFLICT (singleton) DO UPDATE SET refresh_interval = interval '0';
    DELETE FROM lethe.backlog_snapshot;
    UPDATE lethe.backlog_refresh
    SET measured_at = NULL, duration = NULL, pairs = NULL, refreshed_by = process, updated_at = now();
END $$;
REVOKE ALL ON FUNCTION lethe.disable_backlog_snapshot(uuid) FROM PUBLIC;

CREATE OR REPLACE VIEW lethe.retention_backlog_snapshot AS
SELECT s.account_id, s.entity_type, s.effective_interval, s.cutoff, s.expired_rows, s.oldest_clock, s.oldest_age,
       s.behind_by, s.runnable, s.blocked_reason, s.held, s.next_run_at, r.measured_at
FROM lethe.backlog_snapshot s
CROSS JOIN lethe.backlog_refresh r;
COMMENT ON VIEW lethe.retention_backlog_snapshot IS
    'lethe.retention_backlog as of measured_at (refreshed by the leading coordinator every coordinator.backlog_interval): '
    'cheap to scrape; every column is as of measured_at';

-- The refresh's state, for probes: stale when age exceeds twice refresh_interval.
CREATE OR REPLACE VIEW lethe.backlog_snapshot_status AS
SELECT r.measured_at, now() - r.measured_at AS age, r.refresh_interval, r.refresh_interval = interval '0' AS disabled,
       r.refresh_interval > interval '0'
           AND (r.measured_at IS NULL OR now() - r.measured_at > 2 * r.refresh_interval) AS stale,
       r.duration, r.pairs, r.refreshed_by, r.updated_at
FROM lethe.backlog_refresh r;
COMMENT ON VIEW lethe.backlog_snapshot_status IS
    'When lethe.retention_backlog_snapshot was measured, how long that took, the leader''s refresh interval '
    '(0: off, read lethe.retention_backlog) and whether it is stale (older than two intervals); no row: never refreshed';

SELECT lethe.grant_monitor();
