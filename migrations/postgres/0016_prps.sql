-- PRPs. A stored PRP document (POST /prps, `nofx prp generate`) with the confidence its
-- author judged and the gathering run it was generated from.
CREATE TABLE prps (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    document TEXT NOT NULL,
    confidence BIGINT,
    from_run TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX prps_project ON prps (project, created_at);
-- A workspace snapshot taken before a step's first attempt: the manifest of every file
-- (contents in the artifact store by sha256), committed before the step may change
-- anything. `rolled_back_at` and `rollback` are set in the commit that carries the step's
-- prp.step.rolled_back event, so a rollback resumed after a crash undoes each step once.
CREATE TABLE workspace_snapshots (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    taken_at BIGINT NOT NULL,
    manifest TEXT NOT NULL,
    rolled_back_at BIGINT,
    rollback TEXT,
    PRIMARY KEY (run_id, task_id)
);
