-- Fleet: every serving process (node) has a row, renewed by its heartbeat, with its load
-- (runs it executes); new and orphaned runs are claimed by the least-loaded live node.
CREATE TABLE nodes (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    load         BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX runs_open ON runs (created_at) WHERE status IN ('pending', 'running', 'waiting');
