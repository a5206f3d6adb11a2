-- Lineage of restored and forked runs: the run and checkpoint they start from, the task a
-- fork starts at, and on each task restored from a checkpoint the checkpoint's id.
ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE runs ADD COLUMN checkpoint_id TEXT;
ALTER TABLE runs ADD COLUMN forked_at TEXT;
CREATE INDEX runs_parent ON runs (parent_run_id);
ALTER TABLE tasks ADD COLUMN restored_from TEXT;
