-- The rows a run writes most (tasks, events, metrics) no longer carry a foreign key to runs.
-- Each such key cost every inserted row a trigger that locked its run's row (SELECT … FOR KEY
-- SHARE): more than half of a group commit's time on the server. The integrity it guarded
-- holds by construction: a run's rows are written only by the writer holding its lease, in
-- the transaction that creates the run or a later one, and runs are never deleted (retention
-- prunes a run's rows and keeps the run).
ALTER TABLE tasks DROP CONSTRAINT tasks_run_id_fkey;
ALTER TABLE events DROP CONSTRAINT events_run_id_fkey;
ALTER TABLE metrics DROP CONSTRAINT metrics_run_id_fkey;
