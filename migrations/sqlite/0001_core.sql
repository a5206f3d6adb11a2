-- Runtime core: runs, tasks, events, metrics, artifacts, leases and cross-process commands.
-- Times are milliseconds since the Unix epoch (UTC); JSON is stored as text.

CREATE TABLE runs (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    status         TEXT NOT NULL,
    reason         TEXT,
    correlation_id TEXT NOT NULL,
    plan           TEXT NOT NULL,
    inputs         TEXT NOT NULL,
    workspace      TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    started_at     INTEGER,
    finished_at    INTEGER,
    deadline_at    INTEGER
);
CREATE INDEX runs_status ON runs (status);
CREATE INDEX runs_created ON runs (created_at);

CREATE TABLE tasks (
    run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task_id     TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    tool        TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempt     INTEGER NOT NULL DEFAULT 0,
    agent       TEXT,
    outputs     TEXT,
    error       TEXT,
    started_at  INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (run_id, task_id)
) WITHOUT ROWID;

CREATE TABLE events (
    run_id         TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq            INTEGER NOT NULL,
    type           TEXT NOT NULL,
    at             INTEGER NOT NULL,
    task_id        TEXT,
    correlation_id TEXT NOT NULL,
    data           TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

CREATE TABLE metrics (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task_id     TEXT NOT NULL,
    tool        TEXT NOT NULL,
    agent       TEXT,
    attempt     INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    success     BOOLEAN NOT NULL,
    error_type  TEXT,
    at          INTEGER NOT NULL
);
CREATE INDEX metrics_run ON metrics (run_id);
CREATE INDEX metrics_at ON metrics (at);

CREATE TABLE artifacts (
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task_id    TEXT NOT NULL,
    name       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, task_id, name)
);

CREATE TABLE leases (
    run_id     TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    holder     TEXT NOT NULL,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    token      INTEGER NOT NULL
);

CREATE TABLE run_commands (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    reason     TEXT,
    created_at INTEGER NOT NULL,
    handled_at INTEGER
);
CREATE INDEX run_commands_open ON run_commands (run_id) WHERE handled_at IS NULL;
