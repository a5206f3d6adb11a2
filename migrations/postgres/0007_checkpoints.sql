-- Checkpoints of runs: the succeeded tasks with their outputs, the artifacts, and a manifest
-- of the workspace (path -> sha256; the bytes are kept content-addressed with the artifacts).
CREATE TABLE checkpoints (
    id           TEXT PRIMARY KEY,
    run_id       TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    description  TEXT,
    step         BIGINT NOT NULL,
    tasks        TEXT NOT NULL,
    artifacts    TEXT NOT NULL,
    manifest     TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX checkpoints_run ON checkpoints (run_id, created_at);
