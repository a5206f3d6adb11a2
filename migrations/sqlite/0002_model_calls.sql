-- One row per model call, for usage and cost analytics. Rows outlive the runs they belong to
-- (no foreign key), so history survives a deleted run; planner calls have no run yet.
CREATE TABLE model_calls (
    id                       INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id                   TEXT,
    task_id                  TEXT,
    tool                     TEXT,
    agent                    TEXT,
    model                    TEXT NOT NULL,
    provider                 TEXT NOT NULL,
    input_tokens             INTEGER NOT NULL,
    output_tokens            INTEGER NOT NULL,
    estimated_cost_micro_usd INTEGER NOT NULL,
    cost_micro_usd           INTEGER NOT NULL,
    duration_ms              INTEGER NOT NULL,
    success                  BOOLEAN NOT NULL,
    error_type               TEXT,
    correlation_id           TEXT NOT NULL,
    at                       INTEGER NOT NULL
);
CREATE INDEX model_calls_at ON model_calls (at);
