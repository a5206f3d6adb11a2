-- Agent hierarchies: a task that decomposes gets a sub-plan at run time. Each decomposition
-- (round 1) and each replan (rounds 2, …) is one row, committed with the subtasks' rows and
-- its event before any subtask starts; a resume rebuilds the run's graph from the plan and
-- these rows in the order of their first subtask's index (`first_idx`), so nothing is
-- decomposed (or a model asked) twice. A subtask's row is an ordinary task row: its id,
-- `PARENT.CHILD`, says whose subtask it is (plan task ids hold no `.`).
CREATE TABLE decompositions (
    run_id     TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task_id    TEXT NOT NULL,
    round      BIGINT NOT NULL,
    first_idx  BIGINT NOT NULL,
    source     TEXT NOT NULL,
    subtasks   TEXT NOT NULL,
    replaced   TEXT NOT NULL,
    reason     TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, task_id, round)
);

-- A checkpoint holds the run's decompositions: a restore or fork starts from the same
-- sub-plans instead of decomposing again.
ALTER TABLE checkpoints ADD COLUMN decompositions TEXT;
