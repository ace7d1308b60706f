-- Secrets a tenant brings (its own LLM provider keys, later messaging
-- credentials), encrypted at rest with AES-256-GCM under the operator's
-- secrets key; the tenant and name are the associated data, so a
-- ciphertext copied to another row does not decrypt.
CREATE TABLE tenant_secrets (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    nonce       BYTEA NOT NULL,
    ciphertext  BYTEA NOT NULL,
    -- The last four characters, to tell keys apart in listings.
    hint        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
ALTER TABLE tenant_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_secrets
    USING (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*')
    WITH CHECK (tenant_id = current_setting('weft.tenant_id', true) OR current_setting('weft.tenant_id', true) = '*');

-- 1 when the call ran on the tenant's own provider key (no credits charged).
ALTER TABLE llm_calls ADD COLUMN own_key BIGINT NOT NULL DEFAULT 0;
