{% set scope = 'tenant_id, ' if tenant_scoped else '' %}
{% if engine == 'postgres' %}
-- Creates {{ table }} (PostgreSQL). Never edit this file once it has run
-- anywhere: change the schema with a new, higher-numbered migration.

CREATE TABLE {{ table }} (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
{% if tenant_scoped %}
    tenant_id TEXT NOT NULL,
{% endif %}
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
{% if with_timestamps %}
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
{% endif %}
    -- Also the index for lookups by {% if tenant_scoped %}tenant (its leading column){% else %}name{% endif %}.
    UNIQUE ({{ scope }}name)
);
{% if with_timestamps %}

-- Lists are usually newest first{% if tenant_scoped %} within a tenant{% endif %}.
CREATE INDEX {{ table }}_created_at_idx ON {{ table }} ({{ scope }}created_at);

-- updated_at follows every UPDATE, whatever the application sends.
CREATE FUNCTION {{ table }}_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER {{ table }}_touch_updated_at
BEFORE UPDATE ON {{ table }}
FOR EACH ROW EXECUTE FUNCTION {{ table }}_touch_updated_at();
{% endif %}
{% if tenant_scoped %}

-- Row-level security: a session sees and writes only the rows of the tenant
-- named by the setting app.tenant_id, which the application sets at the
-- start of every transaction:
--     SELECT set_config('app.tenant_id', $1, true);
-- Unset, it matches no row. FORCE applies the policy to the table's owner
-- too; only superusers and roles with BYPASSRLS skip it.
ALTER TABLE {{ table }} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {{ table }} FORCE ROW LEVEL SECURITY;
CREATE POLICY {{ table }}_tenant_isolation ON {{ table }}
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
{% endif %}
{% else %}
-- Creates {{ table }} (SQLite). Never edit this file once it has run
-- anywhere: change the schema with a new, higher-numbered migration.

-- STRICT: SQLite refuses values of the wrong type instead of storing them.
CREATE TABLE {{ table }} (
    id INTEGER PRIMARY KEY,
{% if tenant_scoped %}
    -- SQLite has no row-level security: every query must filter on it.
    tenant_id TEXT NOT NULL,
{% endif %}
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
{% if with_timestamps %}
    -- UTC, ISO 8601 with milliseconds: sorts as text, parses everywhere.
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
{% endif %}
    -- Also the index for lookups by {% if tenant_scoped %}tenant (its leading column){% else %}name{% endif %}.
    UNIQUE ({{ scope }}name)
) STRICT;
{% if with_timestamps %}

-- Lists are usually newest first{% if tenant_scoped %} within a tenant{% endif %}.
CREATE INDEX {{ table }}_created_at_idx ON {{ table }} ({{ scope }}created_at);

-- updated_at follows every UPDATE that does not set it itself.
CREATE TRIGGER {{ table }}_touch_updated_at
AFTER UPDATE ON {{ table }}
FOR EACH ROW WHEN NEW.updated_at = OLD.updated_at
BEGIN
    UPDATE {{ table }}
    SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.id;
END;
{% endif %}
{% endif %}
