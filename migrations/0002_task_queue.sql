-- migrate:up
-- 0002: the task queue, the registry of worker and coordinator processes, the leader
-- record, recurring schedules, and the operator views over them. docs/queue.md explains
-- the state machine and the claim, heartbeat, rescue and prune statements.

CREATE TABLE IF NOT EXISTS lethe.tasks (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text        NOT NULL,
    account_id       text,                 -- NULL for tasks that are not per account
    entity_type      text,                 -- NULL for tasks that are not per entity type
    state            text        NOT NULL DEFAULT 'available'
                     CHECK (state IN ('available', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    priority         smallint    NOT NULL DEFAULT 0,   -- lower runs first
    run_at           timestamptz NOT NULL DEFAULT now(),
    attempts         integer     NOT NULL DEFAULT 0,   -- attempts started (a yield does not count)
    max_attempts     integer     NOT NULL DEFAULT 20 CHECK (max_attempts > 0),
    yields           integer     NOT NULL DEFAULT 0,   -- budget slices used so far
    claims           bigint      NOT NULL DEFAULT 0,   -- claims ever made; fences acknowledgements
    lease_expires_at timestamptz,                      -- while running: the heartbeat's deadline
    worker_id        uuid,                             -- while running: the holder
    payload          jsonb       NOT NULL DEFAULT '{}',
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,                      -- start of the current or last attempt
    finished_at      timestamptz
) WITH (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.01,   -- a hot queue churns: vacuum after 1% dead rows,
    autovacuum_vacuum_threshold = 1000,      -- not the default 20%
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0         -- and do it at full speed
);
COMMENT ON TABLE lethe.tasks IS 'The task queue: one row per task; see docs/queue.md for the states';

-- The claim: state IN (available, failed) AND run_at <= now() ORDER BY priority, run_at, id.
CREATE INDEX IF NOT EXISTS tasks_claim_idx ON lethe.tasks (priority, run_at, id)
    WHERE state IN ('available', 'failed');
-- At most one unfinished task per (kind, account, entity type): enqueue is idempotent, and
-- one tenant's type never runs twice at once.
CREATE UNIQUE INDEX IF NOT EXISTS tasks_unfinished_key ON lethe.tasks (kind, account_id, entity_type)
    NULLS NOT DISTINCT WHERE state IN ('available', 'running', 'failed');
-- The rescuer and heartbeats: running tasks by holder. The lease itself is not indexed,
-- so a heartbeat that only moves it can be a HOT update.
CREATE INDEX IF NOT EXISTS tasks_running_idx ON lethe.tasks (worker_id) WHERE state = 'running';
-- The pruner: finished tasks by age.
CREATE INDEX IF NOT EXISTS tasks_finished_idx ON lethe.tasks (finished_at)
    WHERE state IN ('succeeded', 'dead', 'cancelled');

CREATE TABLE IF NOT EXISTS lethe.workers (
    id                uuid        PRIMARY KEY,
    role              text        NOT NULL CHECK (role IN ('worker', 'coordinator')),
    host              text        NOT NULL,
    pid               integer     NOT NULL,
    version           text        NOT NULL,
    slots             integer     NOT NULL DEFAULT 0,
    lease_seconds     double precision NOT NULL,   -- silent this long = lost
    started_at        timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at        timestamptz
) WITH (autovacuum_vacuum_scale_factor = 0.05, autovacuum_vacuum_cost_delay = 0);
COMMENT ON TABLE lethe.workers IS 'Every lethe worker and coordinator process, with its heartbeat';

CREATE TABLE IF NOT EXISTS lethe.leader (
    singleton    boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    process_id   uuid        NOT NULL,
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    elected_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE lethe.leader IS
    'The coordinator that holds the leader advisory lock (the lock is the truth; this row shows it)';

CREATE TABLE IF NOT EXISTS lethe.schedules (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text        NOT NULL,
    account_id       text,
    entity_type      text,
    every            interval    NOT NULL CHECK (every > interval '0'),
    next_run_at      timestamptz NOT NULL DEFAULT now(),
    priority         smallint    NOT NULL DEFAULT 0,
    payload          jsonb       NOT NULL DEFAULT '{}',
    enabled          boolean     NOT NULL DEFAULT true,
    last_enqueued_at timestamptz,
    UNIQUE NULLS NOT DISTINCT (kind, account_id, entity_type)
);
COMMENT ON TABLE lethe.schedules IS
    'Recurring tasks: the leader enqueues each due row (idempotently) and advances next_run_at';
CREATE INDEX IF NOT EXISTS schedules_due_idx ON lethe.schedules (next_run_at) WHERE enabled;

-- Executions of built-in noop tasks whose payload asks to be recorded: benchmarks and
-- acceptance tests count these side effects. Unlogged: diagnostics, safe to truncate.
CREATE UNLOGGED TABLE IF NOT EXISTS lethe.noop_runs (
    task_id   bigint      NOT NULL,
    attempt   integer     NOT NULL,
    worker_id uuid        NOT NULL,
    ran_at    timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE VIEW lethe.queue_summary AS
SELECT kind,
       state,
       count(*)                                                        AS tasks,
       count(*) FILTER (WHERE state IN ('available', 'failed') AND run_at <= now()) AS due,
       min(run_at)                                                     AS oldest_run_at,
       now() - min(run_at) FILTER (WHERE state IN ('available', 'failed') AND run_at <= now())
                                                                       AS oldest_due_age,
       now() - min(started_at) FILTER (WHERE state = 'running')        AS longest_running
FROM lethe.tasks
GROUP BY kind, state;
COMMENT ON VIEW lethe.queue_summary IS
    'Per task kind and state: how many, how many due, and how long the oldest due one has waited';

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
       w.stopped_at
FROM lethe.workers w
LEFT JOIN lethe.leader l ON true;
COMMENT ON VIEW lethe.worker_status IS
    'Every worker and coordinator process: alive, lost (no heartbeat within its lease) or stopped';

CREATE OR REPLACE VIEW lethe.failures AS
SELECT id,
       kind,
       account_id,
       entity_type,
       state,
       attempts,
       max_attempts,
       CASE WHEN state = 'failed' THEN run_at END AS next_attempt_at,
       last_error,
       created_at,
       finished_at
FROM lethe.tasks
WHERE state IN ('failed', 'dead');
COMMENT ON VIEW lethe.failures IS
    'Tasks retrying after a failure (failed) and tasks out of attempts (dead), with their last error';
