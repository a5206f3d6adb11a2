-- Fleet: every serving process (node) has a row, renewed by its heartbeat, with its load
-- (runs it executes); new and orphaned runs are claimed by the least-loaded live node.
CREATE TABLE nodes (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    load         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_open ON runs (created_at) WHERE status IN ('pending', 'running', 'waiting');

-- One row whose CHECK fails a write transaction when a lease the writer fences has moved to
-- another holder (the writer then reads the leases and drops the stale run's rows).
CREATE TABLE fence (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    held INTEGER NOT NULL CONSTRAINT fence_held CHECK (held = 1)
);
INSERT INTO fence (id, held) VALUES (1, 1);
