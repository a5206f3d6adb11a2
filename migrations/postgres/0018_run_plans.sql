-- A run's plan in a table of its own, as on SQLite (which rewrites a whole row on every
-- update: kept in `runs`, a plan was written again with each change of its run's status).
CREATE TABLE run_plans (
    run_id TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    plan   TEXT NOT NULL
);
INSERT INTO run_plans (run_id, plan) SELECT id, plan FROM runs;
ALTER TABLE runs DROP COLUMN plan;
