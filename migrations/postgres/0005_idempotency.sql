-- Idempotency keys of `POST /runs` (and template instantiation): a retry with the same key
-- and body gets the run the first request created.
CREATE TABLE idempotency_keys (
    project     TEXT NOT NULL,
    key         TEXT NOT NULL,
    body_hash   TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (project, key)
);
