-- Credits, plans, the LLM gateway's calls, Stripe and invoices (issue 5).
-- No floating point anywhere: credits are integer micro-credits (1 credit =
-- 1,000,000), money is integer minor units of its currency (cents).

-- One billing account per tenant, created on first use. `balance` is a
-- copy of the sum of the tenant's credit_entries, changed only in the
-- transaction that appends the entry (ledger.rs checks the two agree).
CREATE TABLE billing_accounts (
    tenant_id              TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    balance                BIGINT NOT NULL DEFAULT 0,
    plan                   TEXT NOT NULL,
    suspended              BIGINT NOT NULL DEFAULT 0,
    stripe_customer_id     TEXT,
    stripe_subscription_id TEXT,
    subscription_status    TEXT,
    current_period_end     BIGINT,
    updated_at             BIGINT NOT NULL
);
CREATE UNIQUE INDEX billing_accounts_customer ON billing_accounts (stripe_customer_id);

-- The append-only credits ledger. kind: purchase | grant | charge | refund
-- | adjustment | hold | release. A hold reserves an estimate before an LLM
-- call; its release and the charge for what was used come together after.
CREATE TABLE credit_entries (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind             TEXT NOT NULL,
    amount           BIGINT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    reason           TEXT,
    reference        TEXT,
    actor            TEXT,
    created_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX credit_entries_once ON credit_entries (tenant_id, idempotency_key);
CREATE INDEX credit_entries_by_tenant ON credit_entries (tenant_id, created_at);

-- Holds not yet settled; a sweeper releases those a crash left behind.
CREATE TABLE credit_holds (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    amount      BIGINT NOT NULL,
    tokens      BIGINT NOT NULL,
    user_id     TEXT NOT NULL,
    day         BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX credit_holds_by_age ON credit_holds (created_at);

-- Tokens and calls per tenant and UTC day; user_id '' is the tenant's total.
-- Reserved at the hold, corrected at the settlement.
CREATE TABLE llm_daily (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    day         BIGINT NOT NULL,
    user_id     TEXT NOT NULL,
    tokens      BIGINT NOT NULL DEFAULT 0,
    calls       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day, user_id)
);

-- Sessions opened per tenant and day (plans limit them).
CREATE TABLE llm_sessions (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    day         BIGINT NOT NULL,
    session     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day, session)
);

-- Every gateway request: what was asked, which models were tried, what
-- answered and what it cost.
CREATE TABLE llm_calls (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL,
    plugin         TEXT,
    task           TEXT NOT NULL,
    model          TEXT,
    provider       TEXT,
    input_tokens   BIGINT NOT NULL,
    output_tokens  BIGINT NOT NULL,
    cost           BIGINT NOT NULL,
    estimate       BIGINT NOT NULL,
    outcome        TEXT NOT NULL,
    attempts       TEXT NOT NULL,
    streamed       BIGINT NOT NULL,
    latency_us     BIGINT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX llm_calls_by_tenant ON llm_calls (tenant_id, created_at);

-- A tenant admin's limits for one user, over the plan's (JSON).
CREATE TABLE llm_user_limits (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL,
    limits      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

-- Credit packages as the superadmin last edited them (seeded from config).
CREATE TABLE credit_packages (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    credits       BIGINT NOT NULL,
    price_minor   BIGINT NOT NULL,
    currency      TEXT NOT NULL,
    active        BIGINT NOT NULL,
    position      BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Checkout sessions opened for a tenant, and what completing one grants.
CREATE TABLE checkout_sessions (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    package       TEXT,
    plan          TEXT,
    credits       BIGINT NOT NULL,
    amount_minor  BIGINT NOT NULL,
    currency      TEXT NOT NULL,
    state         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    completed_at  BIGINT
);

-- Stripe webhook events already processed (a replay is acknowledged and
-- does nothing). Platform table: events arrive before a tenant is known.
CREATE TABLE stripe_events (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    tenant_id    TEXT,
    outcome      TEXT NOT NULL,
    received_at  BIGINT NOT NULL
);

-- Usage owed to Stripe as billing meter events; `identifier` makes a
-- resend harmless.
CREATE TABLE meter_reports (
    identifier   TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    event_name   TEXT NOT NULL,
    value        BIGINT NOT NULL,
    occurred_at  BIGINT NOT NULL,
    state        TEXT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    sent_at      BIGINT
);
CREATE INDEX meter_reports_pending ON meter_reports (state, occurred_at);

-- Stored bytes per tenant and UTC day, sampled by the billing job.
CREATE TABLE storage_samples (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    day         BIGINT NOT NULL,
    bytes       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day)
);

-- Monthly invoices; `lines` is the JSON list of lines, totals in minor units.
CREATE TABLE invoices (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    period        TEXT NOT NULL,
    currency      TEXT NOT NULL,
    subtotal_minor BIGINT NOT NULL,
    total_minor   BIGINT NOT NULL,
    lines         TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX invoices_once ON invoices (tenant_id, period);

-- The second wall (see 0001).
ALTER TABLE billing_accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE billing_accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON billing_accounts
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
ALTER TABLE credit_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE credit_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON credit_entries
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
ALTER TABLE credit_holds ENABLE ROW LEVEL SECURITY;
ALTER TABLE credit_holds FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON credit_holds
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
ALTER TABLE llm_daily ENABLE ROW LEVEL SECURITY;
ALTER TABLE llm_daily FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON llm_daily
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
ALTER TABLE llm_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE llm_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON llm_sessions
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
ALTER TABLE llm_calls ENABLE ROW LEVEL SECURITY;
ALTER TABLE llm_calls FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON llm_calls
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
ALTER TABLE llm_user_limits ENABLE ROW LEVEL SECURITY;
ALTER TABLE llm_user_limits FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON llm_user_limits
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
ALTER TABLE checkout_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE checkout_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON checkout_sessions
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
ALTER TABLE meter_reports ENABLE ROW LEVEL SECURITY;
ALTER TABLE meter_reports FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON meter_reports
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
ALTER TABLE storage_samples ENABLE ROW LEVEL SECURITY;
ALTER TABLE storage_samples FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON storage_samples
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;
ALTER TABLE invoices FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invoices
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');
