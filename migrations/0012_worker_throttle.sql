-- migrate:up
-- 0012: each worker's throttle state (issue 17), so that `lethe status` and dashboards can say
-- which workers slow or pause retention for the database's health, why, and since when. The
-- worker writes it when its reasons or their figures change (at most once a heartbeat) and
-- clears it when the pressure goes or it stops.
ALTER TABLE lethe.workers ADD COLUMN IF NOT EXISTS throttled_reasons text[] NOT NULL DEFAULT '{}';
ALTER TABLE lethe.workers ADD COLUMN IF NOT EXISTS throttled_since timestamptz;
ALTER TABLE lethe.workers ADD COLUMN IF NOT EXISTS throttle_detail text;
COMMENT ON COLUMN lethe.workers.throttled_reasons IS
    'Why the worker slows or pauses retention batches now (replication_lag, wal_rate, transaction_age, lock_waits); empty: it does not';
COMMENT ON COLUMN lethe.workers.throttled_since IS 'When the current throttle began; NULL when not throttled';
COMMENT ON COLUMN lethe.workers.throttle_detail IS
    'The signals over their throttle.* limits at the last sample, in words; NULL when not throttled';

-- lethe.worker_status gains the three columns at its end (the earlier columns are unchanged).
CREATE OR REPLACE VIEW lethe.worker_status AS
SELECT w.id,
       w.role,
       w.host,
       w.pid,
       w.version,
       w.slots,
       CASE WHEN w.stopped_at IS NOT NULL THEN 'stopped'
            WHEN w.last_heartbeat_at >= now() - make_interval(secs => w.lease_seconds) THEN 'alive'
            ELSE 'lost' END                                            AS status,
       coalesce(l.process_id = w.id AND w.stopped_at IS NULL, false)   AS is_leader,
       (SELECT count(*) FROM lethe.tasks t WHERE t.state = 'running' AND t.worker_id = w.id) AS running_tasks,
       w.started_at,
       w.last_heartbeat_at,
       now() - w.last_heartbeat_at                                     AS silent_for,
       w.stopped_at,
       w.throttled_reasons,
       w.throttled_since,
       w.throttle_detail
FROM lethe.workers w
LEFT JOIN lethe.leader l ON true;

-- The operator's question "which workers are throttled, why, and for how long": live workers only
-- (a lost or stopped worker throttles nothing).
CREATE OR REPLACE VIEW lethe.throttled_workers AS
SELECT w.id,
       w.host,
       w.pid,
       w.throttled_reasons AS reasons,
       w.throttled_since   AS since,
       now() - w.throttled_since AS throttled_for,
       w.throttle_detail   AS detail,
       w.last_heartbeat_at
FROM lethe.workers w
WHERE w.role = 'worker' AND w.stopped_at IS NULL AND cardinality(w.throttled_reasons) > 0
  AND w.last_heartbeat_at >= now() - make_interval(secs => w.lease_seconds);
COMMENT ON VIEW lethe.throttled_workers IS
    'Live workers that slow or pause retention for the database''s health: reasons, since when, for how long, and why in words';

SELECT lethe.grant_monitor();
