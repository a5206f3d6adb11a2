-- Plan templates: per project (ids unique per project); shipped templates have project ''
-- and are visible to every project, read-only.
CREATE TABLE templates (
    project      TEXT NOT NULL,
    id           TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    category     TEXT NOT NULL,
    plan         TEXT NOT NULL,
    metadata     TEXT NOT NULL,
    usage_count  INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (project, id)
);
CREATE INDEX templates_category ON templates (category);
CREATE INDEX templates_usage ON templates (usage_count);
