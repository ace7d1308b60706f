-- Secrets a tenant brings (its own LLM provider keys, later messaging
-- credentials), encrypted at rest with AES-256-GCM under the operator's
-- secrets key; the tenant and name are the associated data, so a
-- ciphertext copied to another row does not decrypt.
CREATE TABLE tenant_secrets (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    -- The last four characters, to tell keys apart in listings.
    hint        TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- 1 when the call ran on the tenant's own provider key (no credits charged).
ALTER TABLE llm_calls ADD COLUMN own_key INTEGER NOT NULL DEFAULT 0;
