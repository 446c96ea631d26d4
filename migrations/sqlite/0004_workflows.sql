-- Workflows: tasks composed into a graph of stages. Each stage is a task
-- row; the workflow row holds what is shared and the releaser's bookkeeping.
CREATE TABLE workflows (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,  -- submission order, list cursor
    id                TEXT NOT NULL UNIQUE,
    tenant            TEXT NOT NULL,
    name              TEXT,
    labels            TEXT NOT NULL,       -- JSON map
    state             TEXT NOT NULL,       -- running | succeeded | failed | cancelled
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    changes           INTEGER NOT NULL DEFAULT 0,  -- bumped whenever one of its stages finishes
    settled           INTEGER NOT NULL DEFAULT 0,  -- `changes` as of the last release pass
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    finished_at       INTEGER
);
CREATE INDEX workflows_by_tenant ON workflows (tenant, seq);
CREATE INDEX workflows_unsettled ON workflows (seq) WHERE changes <> settled;
CREATE INDEX workflows_finished ON workflows (finished_at) WHERE finished_at IS NOT NULL;

-- A stage's task: its workflow, its name, what it waits for ({dependsOn,
-- condition} as JSON), and whether it is still held back (blocked = 1) until
-- its upstream stages finish and its placeholders are resolved.
ALTER TABLE tasks ADD COLUMN workflow_id TEXT;
ALTER TABLE tasks ADD COLUMN stage TEXT;
ALTER TABLE tasks ADD COLUMN stage_plan TEXT;
ALTER TABLE tasks ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tasks_by_workflow ON tasks (workflow_id, seq) WHERE workflow_id IS NOT NULL;

-- Claims and placement see only released tasks.
DROP INDEX tasks_pending;
CREATE INDEX tasks_pending ON tasks (seq) WHERE state = 'pending' AND blocked = 0;
DROP INDEX tasks_pending_shape;
CREATE INDEX tasks_pending_shape ON tasks (task_type) WHERE state = 'pending' AND blocked = 0;
