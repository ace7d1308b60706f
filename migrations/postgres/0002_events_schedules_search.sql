-- Events, schedule runs and the search journal (issue 4).

-- A published event: written in the publishing call's unit of work.
CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    publisher   TEXT NOT NULL,
    topic       TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX events_by_tenant ON events (tenant_id, created_at);

-- One handler call owed to one plugin: an event delivery, or a schedule run.
-- `next_attempt_at` is also the lease: a claim pushes it past the call's
-- time limit, so a crashed worker's claim becomes due again by itself.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    subscriber      TEXT NOT NULL,
    kind            TEXT NOT NULL,          -- 'event' | 'schedule'
    event_id        TEXT REFERENCES events(id) ON DELETE CASCADE,
    schedule        TEXT,                   -- kind = 'schedule'
    due_at          BIGINT,                 -- kind = 'schedule'
    state           TEXT NOT NULL,          -- 'pending' | 'done' | 'dead'
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_by_tenant ON deliveries (tenant_id, state, created_at);
-- The claim of a schedule run: once per due time, whatever the replicas.
CREATE UNIQUE INDEX deliveries_schedule_once ON deliveries (tenant_id, subscriber, schedule, due_at);

-- Search writes made in a call's unit of work, kept until the index has
-- committed them (replayed at start-up after a crash).
CREATE TABLE search_journal (
    seq         BIGSERIAL PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    plugin      TEXT NOT NULL,
    index_name  TEXT NOT NULL,
    doc_id      TEXT NOT NULL,
    fields      TEXT,                       -- NULL: delete
    created_at  BIGINT NOT NULL
);

ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON events
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
ALTER TABLE deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON deliveries
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
ALTER TABLE search_journal ENABLE ROW LEVEL SECURITY;
ALTER TABLE search_journal FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON search_journal
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
