-- Budgets: model calls carry the project they are billed to; spend is summed per run and per
-- project and calendar month before each call.
ALTER TABLE model_calls ADD COLUMN project TEXT;
CREATE INDEX model_calls_run ON model_calls (run_id);
CREATE INDEX model_calls_project ON model_calls (project, at);
