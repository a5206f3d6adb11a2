-- Durable waits on people: a manual approval is a row with who may answer and a deadline,
-- written with its approval.requested event; the first decision (a person's, or the
-- deadline's default) fills decision/decided_by/decided_at, exactly once.
CREATE TABLE waits (
    id           TEXT PRIMARY KEY,
    run_id       TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task_id      TEXT NOT NULL,
    attempt      BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    approvers    TEXT NOT NULL,
    deadline_at  BIGINT,
    on_timeout   TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    decision     TEXT,
    decided_by   TEXT,
    reason       TEXT,
    decided_at   BIGINT
);
CREATE INDEX waits_run ON waits (run_id, task_id);
CREATE INDEX waits_open ON waits (deadline_at) WHERE decided_at IS NULL;
