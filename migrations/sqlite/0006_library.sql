-- The code library: items (global when tenant_id is NULL, else one
-- tenant's own), every version of each kept (an edit adds one), the
-- embedding computed once per version, ratings, usage and the record of
-- every search-first generation request (for the library hit rate).
CREATE TABLE library_items (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT REFERENCES tenants(id) ON DELETE CASCADE,
    current_version INTEGER NOT NULL,
    -- 'seed' for the shipped items, else the user or key that made it.
    created_by      TEXT NOT NULL,
    uses            INTEGER NOT NULL DEFAULT 0,
    stars           INTEGER NOT NULL DEFAULT 0,
    ratings         INTEGER NOT NULL DEFAULT 0,
    -- 1 pass, 0 fail, NULL no tests known.
    tests_pass      INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    deleted_at      INTEGER
);
CREATE INDEX library_items_tenant ON library_items (tenant_id);

CREATE TABLE library_versions (
    item_id         TEXT NOT NULL REFERENCES library_items(id) ON DELETE CASCADE,
    version         INTEGER NOT NULL,
    tenant_id       TEXT REFERENCES tenants(id) ON DELETE CASCADE,
    title           TEXT NOT NULL,
    description     TEXT NOT NULL,
    language        TEXT NOT NULL,
    kind            TEXT NOT NULL,
    -- JSON arrays: tags, dependencies, placeholders ({name, description, default}).
    tags            TEXT NOT NULL,
    license         TEXT NOT NULL,
    dependencies    TEXT NOT NULL,
    placeholders    TEXT NOT NULL,
    code            TEXT NOT NULL,
    -- sha256 of the whitespace-normalised code: duplicates are found by it.
    code_hash       TEXT NOT NULL,
    -- 384 little-endian f32s, or NULL until a model computed them.
    embedding       BLOB,
    lint_violations INTEGER NOT NULL DEFAULT 0,
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (item_id, version)
);
CREATE INDEX library_versions_hash ON library_versions (code_hash);

CREATE TABLE library_ratings (
    item_id    TEXT NOT NULL REFERENCES library_items(id) ON DELETE CASCADE,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    stars      INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (item_id, tenant_id, user_id)
);

CREATE TABLE library_requests (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    query       TEXT NOT NULL,
    -- 'library' (a hit: served from an item) or 'llm' (a miss: generated).
    served_by   TEXT NOT NULL,
    item_id     TEXT,
    confidence  REAL NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX library_requests_tenant ON library_requests (tenant_id, created_at);

-- The constraint documents, one row per version of each.
CREATE TABLE library_constraints (
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    body        TEXT NOT NULL,
    loaded_at   INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);
