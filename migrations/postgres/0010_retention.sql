-- Retention: when the events, metrics, checkpoints and workspace of a finished run were
-- deleted (the run and task rows, artifacts and usage rows stay).
ALTER TABLE runs ADD COLUMN pruned_at BIGINT;
CREATE INDEX runs_unpruned ON runs (finished_at) WHERE pruned_at IS NULL AND finished_at IS NOT NULL;
