-- The group commit's writer reads the leases it fences inside its own write transaction: the
-- `fence` row that made a lease check fail a one-call transaction is no longer used.
DROP TABLE fence;

-- metrics: a plain INTEGER PRIMARY KEY instead of AUTOINCREMENT. Ids still only grow while
-- rows are only added; AUTOINCREMENT cost every insert a write to sqlite_sequence (one more
-- page in each commit of a task's result).
CREATE TABLE metrics_new (
    id          INTEGER PRIMARY KEY,
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
INSERT INTO metrics_new (id, run_id, task_id, tool, agent, attempt, duration_ms, success, error_type, at)
    SELECT id, run_id, task_id, tool, agent, attempt, duration_ms, success, error_type, at FROM metrics;
DROP TABLE metrics;
ALTER TABLE metrics_new RENAME TO metrics;
CREATE INDEX metrics_run ON metrics (run_id);
CREATE INDEX metrics_at ON metrics (at);
