-- Service: every run belongs to a project (from the API key that submitted it, else the
-- plan's `project`); API keys are stored as SHA-256 hashes only.
ALTER TABLE runs ADD COLUMN project TEXT NOT NULL DEFAULT 'default';
CREATE INDEX runs_project ON runs (project, created_at);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    project     TEXT NOT NULL,
    name        TEXT,
    hash        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX api_keys_project ON api_keys (project);
