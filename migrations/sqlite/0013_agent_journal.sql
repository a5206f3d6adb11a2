-- The journal of agents that reason: one row per loop (a task's, or a sub-agent's under the
-- call that asked it), one per model turn (the assistant message of that turn only), one
-- per tool call (written `started` before the call runs, then with its result). A loop
-- resumed after a crash is rebuilt from these rows: a committed turn is never asked again
-- and a finished call never runs again.
CREATE TABLE agent_loops (
    id            TEXT PRIMARY KEY,
    run_id        TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task_id       TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    parent_loop   TEXT,
    parent_call   TEXT,
    depth         INTEGER NOT NULL,
    agent         TEXT NOT NULL,
    system        TEXT,
    prompt        TEXT NOT NULL,
    tools         TEXT NOT NULL,
    output_schema TEXT,
    max_turns     INTEGER NOT NULL,
    status        TEXT NOT NULL,
    stop_reason   TEXT,
    answer        TEXT,
    error         TEXT,
    created_at    INTEGER NOT NULL,
    finished_at   INTEGER
);
CREATE INDEX agent_loops_task ON agent_loops (run_id, task_id);
CREATE INDEX agent_loops_parent ON agent_loops (parent_loop, parent_call);

CREATE TABLE agent_turns (
    loop_id            TEXT NOT NULL REFERENCES agent_loops (id) ON DELETE CASCADE,
    turn               INTEGER NOT NULL,
    run_id             TEXT NOT NULL,
    model              TEXT NOT NULL,
    text               TEXT NOT NULL,
    tool_calls         TEXT NOT NULL,
    feedback           TEXT,
    input_tokens       INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cache_read_tokens  INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cost_micro_usd     INTEGER NOT NULL,
    at                 INTEGER NOT NULL,
    PRIMARY KEY (loop_id, turn)
);

CREATE TABLE tool_calls (
    loop_id         TEXT NOT NULL REFERENCES agent_loops (id) ON DELETE CASCADE,
    turn            INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    run_id          TEXT NOT NULL,
    call_id         TEXT NOT NULL,
    name            TEXT NOT NULL,
    tool            TEXT,
    input           TEXT NOT NULL,
    status          TEXT NOT NULL,
    result          TEXT,
    is_error        BOOLEAN NOT NULL,
    idempotency_key TEXT NOT NULL,
    wait_id         TEXT,
    started_at      INTEGER,
    finished_at     INTEGER,
    duration_ms     INTEGER,
    PRIMARY KEY (loop_id, turn, seq)
);

-- Prompt caching: tokens read from and written to a provider's prompt cache (priced apart).
ALTER TABLE model_calls ADD COLUMN cache_read_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE model_calls ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
