-- The outbox (issue 6): messages plugins send, their delivery attempts,
-- per-tenant counters for rate limits and daily quotas, the dev inbox and
-- users' in-app notifications.

-- A message queued by a plugin call, in that call's unit of work.
-- `next_attempt_at` is also the lease: a claim pushes it past the send
-- timeout, so a crashed worker's claim becomes due again by itself.
CREATE TABLE outbox_messages (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    plugin          TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    channel         TEXT NOT NULL,          -- 'email' | 'sms' | 'push' | 'in_app'
    recipient       TEXT NOT NULL,
    content         TEXT NOT NULL,          -- the rendered message, JSON
    status          TEXT NOT NULL,          -- queued | sent | delivered | bounced | failed | dead
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    provider        TEXT,                   -- who accepted it: smtp, sendgrid, ..., dev, in_app
    provider_id     TEXT,                   -- the provider's id, matched by status webhooks
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX outbox_messages_once ON outbox_messages (tenant_id, plugin, idempotency_key);
CREATE INDEX outbox_messages_due ON outbox_messages (status, next_attempt_at);
CREATE INDEX outbox_messages_by_tenant ON outbox_messages (tenant_id, created_at);
CREATE INDEX outbox_messages_by_provider_id ON outbox_messages (provider, provider_id);

-- Every delivery attempt of a message, for the admin's view.
CREATE TABLE outbox_attempts (
    message_id  TEXT NOT NULL REFERENCES outbox_messages(id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    provider    TEXT NOT NULL,
    outcome     TEXT NOT NULL,              -- sent | transient | permanent
    detail      TEXT,
    at          BIGINT NOT NULL,
    PRIMARY KEY (message_id, attempt)
);

-- Messages queued per tenant, channel and window ('d:YYYY-MM-DD' for the
-- daily quota, 'm:<minute>' for the rate limit), counted in the sending
-- call's unit of work.
CREATE TABLE outbox_counters (
    tenant_id   TEXT NOT NULL,
    channel     TEXT NOT NULL,
    win         TEXT NOT NULL,
    count       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, channel, win)
);

-- Dev mode: what would have been sent, when no provider is configured.
CREATE TABLE dev_inbox (
    message_id  TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    channel     TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    content     TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX dev_inbox_by_tenant ON dev_inbox (tenant_id, at);

-- In-app notifications, one per message, kept for their user.
CREATE TABLE notifications (
    id          TEXT PRIMARY KEY,           -- the message id
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    link        TEXT,
    data        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    read_at     BIGINT
);
CREATE INDEX notifications_by_user ON notifications (tenant_id, user_id, id);

ALTER TABLE outbox_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON outbox_messages
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');

ALTER TABLE outbox_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON outbox_attempts
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');

ALTER TABLE outbox_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox_counters FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON outbox_counters
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');

ALTER TABLE dev_inbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE dev_inbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON dev_inbox
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');

ALTER TABLE notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE notifications FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notifications
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
