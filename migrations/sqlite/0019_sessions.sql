-- Browser sessions of the dashboard: a login with an API key gets a session whose token is
-- kept in an HttpOnly cookie; only the token's SHA-256 hash is stored. A session is as good
-- as its key: revoking the key ends it.
CREATE TABLE sessions (
    hash       TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);
