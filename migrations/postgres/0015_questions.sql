-- Typed questions to the user are waits (kind `question`): one row per question asked (or
-- skipped because its depends_on was not met), written with its question.asked (or
-- question.skipped) event. `spec` is the question as asked; `scope` tells apart the asks
-- of one task (a plan task's ask, or each ask call of an agent). The first answer — a
-- person's, or the default at the deadline — fills answer/source/timed_out with
-- decided_by/decided_at, exactly once; `noted_at` is set in the commit that carries its
-- question.answered / question.defaulted event, so each is announced once.
ALTER TABLE waits ADD COLUMN question_id TEXT;
ALTER TABLE waits ADD COLUMN scope TEXT;
ALTER TABLE waits ADD COLUMN spec TEXT;
ALTER TABLE waits ADD COLUMN question_status TEXT;
ALTER TABLE waits ADD COLUMN answer TEXT;
ALTER TABLE waits ADD COLUMN source TEXT;
ALTER TABLE waits ADD COLUMN timed_out BOOLEAN;
ALTER TABLE waits ADD COLUMN noted_at BIGINT;
CREATE INDEX waits_questions ON waits (run_id, question_id) WHERE question_id IS NOT NULL;
CREATE INDEX waits_pending_questions ON waits (kind) WHERE kind = 'question' AND decided_at IS NULL;
