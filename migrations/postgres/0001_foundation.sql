-- Foundation: tenancy, plugin catalog, tenant-scoped storage, metering.
-- Timestamps are Unix milliseconds; flags are 0/1 integers (portable through sqlx::Any).

CREATE TABLE tenants (
    id             TEXT PRIMARY KEY,
    slug           TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    quota_keys     BIGINT,          -- NULL: the operator's default
    quota_bytes    BIGINT,
    created_at     BIGINT NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT REFERENCES tenants(id) ON DELETE CASCADE,  -- NULL for superadmins
    email          TEXT NOT NULL,
    name           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('user', 'admin', 'superadmin')),
    disabled       BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_tenant_email ON users (COALESCE(tenant_id, ''), email);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    prefix         TEXT NOT NULL,
    key_hash       TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    created_by     TEXT,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE plugins (
    name            TEXT PRIMARY KEY,
    current_version TEXT NOT NULL,
    description     TEXT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE plugin_versions (
    plugin          TEXT NOT NULL REFERENCES plugins(name) ON DELETE CASCADE,
    version         TEXT NOT NULL,
    wit_version     TEXT NOT NULL,
    manifest        TEXT NOT NULL,   -- the plugin.toml as installed
    component_hash  TEXT NOT NULL,   -- sha256 hex of the component bytes
    component       BYTEA NOT NULL,
    installed_at    BIGINT NOT NULL,
    PRIMARY KEY (plugin, version)
);

CREATE TABLE tenant_plugins (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    plugin      TEXT NOT NULL REFERENCES plugins(name) ON DELETE CASCADE,
    enabled     BIGINT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, plugin)
);

CREATE TABLE kv_entries (
    tenant_id   TEXT NOT NULL,
    plugin      TEXT NOT NULL,
    key         BYTEA NOT NULL,       -- UTF-8 bytes: byte order on every engine
    value       BYTEA NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, plugin, key)
);

CREATE TABLE documents (
    tenant_id   TEXT NOT NULL,
    plugin      TEXT NOT NULL,
    collection  TEXT NOT NULL,
    id          TEXT COLLATE "C" NOT NULL,
    body        JSONB NOT NULL,
    size        BIGINT NOT NULL,
    version     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, plugin, collection, id)
);

-- Running totals that quotas are checked against, kept in the same
-- transaction as every kv/docs write.
CREATE TABLE tenant_storage (
    tenant_id   TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    keys        BIGINT NOT NULL DEFAULT 0,
    bytes       BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE usage_events (
    tenant_id        TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    plugin           TEXT NOT NULL,
    version          TEXT NOT NULL,
    fuel             BIGINT NOT NULL,
    wall_us          BIGINT NOT NULL,
    peak_memory      BIGINT NOT NULL,
    bytes_in         BIGINT NOT NULL,
    bytes_out        BIGINT NOT NULL,
    outcome          TEXT NOT NULL,
    request_id       TEXT NOT NULL,
    occurred_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, idempotency_key)
);
CREATE INDEX usage_events_time ON usage_events (tenant_id, occurred_at);

-- Responses kept for requests that carried an Idempotency-Key, so a retry
-- replays the answer instead of running (and billing) the call again.
CREATE TABLE idempotent_responses (
    tenant_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    plugin      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,       -- method + path + body hash of the first request
    status      BIGINT,             -- NULL while the first request is in flight
    headers     TEXT,
    body        BYTEA,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

CREATE TABLE plugin_logs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    plugin      TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    stream      TEXT NOT NULL,       -- trace|debug|info|warn|error|stdout|stderr
    message     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX plugin_logs_tenant ON plugin_logs (tenant_id, plugin, id);

-- Row-level security: a second wall behind the host's own scoping. The host
-- runs every transaction with `weft.tenant_id` set to the bound tenant, or to
-- '*' for platform work (metering, admin); unset means no rows at all.
ALTER TABLE tenant_plugins ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_plugins FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_plugins
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
ALTER TABLE kv_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE kv_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON kv_entries
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE documents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON documents
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
ALTER TABLE tenant_storage ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_storage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_storage
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
ALTER TABLE usage_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE usage_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON usage_events
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
ALTER TABLE idempotent_responses ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotent_responses FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON idempotent_responses
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
ALTER TABLE plugin_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE plugin_logs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON plugin_logs
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
