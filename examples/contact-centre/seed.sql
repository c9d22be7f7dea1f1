-- Data generators for the example application, set-based (INSERT … SELECT over
-- generate_series): app.seed_demo(tenants, scale) for the demo, app.seed_tenant(…) for one
-- tenant of any size (the retention benchmark makes one with a million conversations).
-- Deterministic: the "random" parts are hashes of the row number.

-- A fraction in [0, 1) from a row number and a salt.
CREATE OR REPLACE FUNCTION app.frac(n bigint, salt bigint DEFAULT 0) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (((n + salt * 7919) * 2654435761) % 1000003)::double precision / 1000003;

-- The start of conversation g of n: in order over [newest - span, newest], with jitter.
CREATE OR REPLACE FUNCTION app.started(g bigint, n bigint, span interval, newest timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN newest - span + span * ((g + app.frac(g, 3)) / greatest(n, 1));

-- Reserves n ids of a table's identity and returns the first.
CREATE OR REPLACE FUNCTION app.reserve(tbl text, n bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    seq text := pg_get_serial_sequence(tbl, 'id');
    first bigint := nextval(seq);
BEGIN
    IF n > 1 THEN PERFORM setval(seq, first + n - 1); END IF;
    RETURN first;
END $$;

-- One tenant: `conversations` conversations started in order over [newest - span, newest]
-- (the heap in time order, as an append-only table's is; about 3% still open), `messages_per_conversation` messages each (10% with an
-- attachment blob), recordings on 30%; with `extras`, also audit log entries, webhook calls
-- (10% with bodies over 5,000 characters stored as blobs), persons (70% anonymous) with
-- presences and device infos (some unreferenced), staff, external contacts, enquiries (20%
-- open), article versions (1-6 per article) and a few orphan blobs. Returns rows inserted.
CREATE OR REPLACE FUNCTION app.seed_tenant(account bigint, conversations integer,
                                           messages_per_conversation integer DEFAULT 5,
                                           span interval DEFAULT '2 years', newest timestamptz DEFAULT now(),
                                           extras boolean DEFAULT true) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint := conversations;
    m bigint := messages_per_conversation;
    c0 bigint; m0 bigint; rb0 bigint; ab0 bigint; a0 bigint;
    p0 bigint; d0 bigint; wb0 bigint;
    persons bigint := greatest(conversations / 3, 1);
    devices bigint := greatest(conversations / 6, 1);
    calls bigint := greatest(conversations / 2, 1);
    articles bigint := greatest(conversations / 10, 1);
    total bigint := 0;
    rows bigint;
BEGIN
    INSERT INTO app.accounts (id, name) VALUES (account, 'Tenant ' || account) ON CONFLICT (id) DO NOTHING;
    p0 := NULL;

    IF extras THEN
        d0 := app.reserve('app.device_infos', devices);
        INSERT INTO app.device_infos (id, account_id, user_agent, created_at)
        SELECT d0 + g, account, 'Mozilla/5.0 (device ' || g || ')', newest - span * app.frac(g, account * 11 + 1)
        FROM generate_series(0, devices - 1) g;
        total := total + devices;

        p0 := app.reserve('app.persons', persons);
        INSERT INTO app.persons (id, account_id, anonymous, email, last_seen_at, device_info_id)
        SELECT p0 + g, account, app.frac(g, account * 11 + 2) < 0.7,
               CASE WHEN app.frac(g, account * 11 + 2) >= 0.7 THEN 'person' || g || '@example.com' END,
               newest - span * app.frac(g, account * 11 + 3),
               CASE WHEN g % 4 = 0 THEN d0 + (g / 4) % devices END
        FROM generate_series(0, persons - 1) g;
        total := total + persons;

        -- About one presence per person; every third presence names a device.
        INSERT INTO app.person_presences (account_id, person_id, device_info_id, seen_at)
        SELECT account, p0 + g, CASE WHEN g % 3 = 0 THEN d0 + (g / 3 + 1) % devices END,
               newest - span * app.frac(g, account * 11 + 3) - interval '1 hour'
        FROM generate_series(0, persons - 1) g
        WHERE g % 5 <> 4;   -- a fifth of the persons have no presence left
        GET DIAGNOSTICS rows = ROW_COUNT;
        total := total + rows;
    END IF;

    -- Recordings for 30% of the conversations.
    rb0 := app.reserve('app.blobs', n);
    INSERT INTO app.blobs (id, account_id, kind, byte_size, content, created_at)
    SELECT rb0 + g, account, 'recording', 200000 + (g % 1000), '\x52494646'::bytea,
           app.started(g, n, span, newest)
    FROM generate_series(0, n - 1) g
    WHERE g % 10 < 3;
    GET DIAGNOSTICS rows = ROW_COUNT;
    total := total + rows;

    c0 := app.reserve('app.conversations', n);
    INSERT INTO app.conversations (id, account_id, channel, person_id, started_at, ended_at, recording_blob_id)
    SELECT c0 + g, account, (ARRAY['chat', 'voice', 'email', 'video'])[1 + g % 4],
           CASE WHEN p0 IS NOT NULL AND g % 5 = 0 THEN p0 + (g / 5) % persons END,
           app.started(g, n, span, newest),
           CASE WHEN g % 33 = 7 THEN NULL
                ELSE app.started(g, n, span, newest) + (g % 120) * interval '1 minute' END,
           CASE WHEN g % 10 < 3 THEN rb0 + g END
    FROM generate_series(0, n - 1) g;
    total := total + n;

    IF m > 0 THEN
        m0 := app.reserve('app.messages', n * m);
        INSERT INTO app.messages (id, conversation_id, account_id, sent_at, body)
        SELECT m0 + g * m + k, c0 + g, account,
               app.started(g, n, span, newest) + k * interval '1 minute', 'message ' || k
        FROM generate_series(0, n - 1) g CROSS JOIN LATERAL generate_series(0, m - 1) k
        ORDER BY g, k;
        total := total + n * m;

        -- An attachment on every tenth message.
        ab0 := app.reserve('app.blobs', n * m / 10 + 1);
        INSERT INTO app.blobs (id, account_id, kind, byte_size, content, created_at)
        SELECT ab0 + i / 10, account, 'file', 1000 + i % 5000, '\x25504446'::bytea, app.started(i / m, n, span, newest)
        FROM generate_series(0, n * m - 1, 10) i;
        a0 := app.reserve('app.message_attachments', n * m / 10 + 1);
        INSERT INTO app.message_attachments (id, message_id, account_id, blob_id)
        SELECT a0 + i / 10, m0 + i, account, ab0 + i / 10
        FROM generate_series(0, n * m - 1, 10) i;
        GET DIAGNOSTICS rows = ROW_COUNT;
        total := total + 2 * rows;
    END IF;

    IF NOT extras THEN
        RETURN total;
    END IF;

    INSERT INTO app.audit_log (account_id, occurred_at, actor, action, detail)
    SELECT account, newest - span * app.frac(g, account * 11 + 4), 'user' || g % 17,
           (ARRAY['login', 'export', 'settings.update', 'user.invite'])[1 + g % 4], jsonb_build_object('n', g)
    FROM generate_series(0, n - 1) g;
    total := total + n;

    -- Webhook calls: every tenth has request and response bodies over 5,000 characters, as blobs.
    wb0 := app.reserve('app.blobs', 2 * (calls / 10 + 1));
    INSERT INTO app.blobs (id, account_id, kind, byte_size, content, created_at)
    SELECT wb0 + 2 * (g / 10) + side, account, 'webhook_body', 5001 + g % 20000, '\x7b7d'::bytea,
           newest - span * app.frac(g, account * 11 + 5)
    FROM generate_series(0, calls - 1, 10) g, generate_series(0, 1) side;
    INSERT INTO app.webhook_calls (account_id, executed_at, url, status, request_body, response_body,
                                   request_blob_id, response_blob_id)
    SELECT account, newest - span * app.frac(g, account * 11 + 5), 'https://hooks.example.com/' || g % 7,
           (ARRAY[200, 200, 200, 500, 404])[1 + g % 5],
           CASE WHEN g % 10 <> 0 THEN '{"event":"conversation.ended","n":' || g || '}' END,
           CASE WHEN g % 10 <> 0 THEN '{"ok":true}' END,
           CASE WHEN g % 10 = 0 THEN wb0 + 2 * (g / 10) END,
           CASE WHEN g % 10 = 0 THEN wb0 + 2 * (g / 10) + 1 END
    FROM generate_series(0, calls - 1) g;
    total := total + calls + 2 * (calls / 10 + 1);

    INSERT INTO app.staff (account_id, name, email, updated_at)
    SELECT account, 'Agent ' || g, 'agent' || g || '@tenant' || account || '.example', newest - span * app.frac(g, account * 11 + 6)
    FROM generate_series(1, 10 + n / 500) g;
    INSERT INTO app.external_contacts (account_id, name, phone, updated_at)
    SELECT account, 'Contact ' || g, '+44 20 7946 ' || lpad((g % 10000)::text, 4, '0'),
           newest - span * app.frac(g, account * 11 + 7)
    FROM generate_series(1, 5 + n / 200) g;
    total := total + 15 + n / 500 + n / 200;

    INSERT INTO app.enquiries (account_id, opened_at, closed_at, status)
    SELECT account, newest - span * app.frac(g, account * 11 + 8),
           CASE WHEN g % 5 = 0 THEN NULL ELSE newest - span * app.frac(g, account * 11 + 8) + interval '2 days' END,
           CASE WHEN g % 5 = 0 THEN 'open' ELSE 'closed' END
    FROM generate_series(0, n / 4) g;
    total := total + n / 4 + 1;

    INSERT INTO app.article_versions (account_id, article_id, version, saved_at, body)
    SELECT account, account * 1000000 + a, v, newest - span * app.frac(a, account * 11 + 9) + (v - 1) * interval '20 days',
           'version ' || v
    FROM generate_series(1, articles) a, generate_series(1, 1 + (a % 6)) v;
    GET DIAGNOSTICS rows = ROW_COUNT;
    total := total + rows;

    -- Orphans: blobs nothing references (an upload abandoned), of various ages.
    INSERT INTO app.blobs (account_id, kind, byte_size, content, created_at)
    SELECT account, 'file', 100, '\x00'::bytea, newest - g * interval '5 days'
    FROM generate_series(1, 3 + n / 1000) g;
    total := total + 3 + n / 1000;
    RETURN total;
END $$;

-- The demo's tenants 1..tenants with skewed sizes: tenant i gets about scale / i
-- conversations (at least 40), with 3 to 6 messages each, over the last two years.
CREATE OR REPLACE FUNCTION app.seed_demo(tenants integer DEFAULT 12, scale integer DEFAULT 2000) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    total bigint := 0;
BEGIN
    FOR i IN 1..tenants LOOP
        total := total + app.seed_tenant(i, greatest(scale / i, 40), 3 + i % 4);
    END LOOP;
    RETURN total;
END $$;
