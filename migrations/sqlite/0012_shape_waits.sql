-- Why the pending tasks of one shape wait is kept once for the shape, not
-- on each task: placement explains shapes (tenant, type, hardware request,
-- required labels, the worker a retry passes over), and writing a shape's
-- reason on every one of its tasks rewrote a deep queue's rows, a
-- transaction at a time, while claims waited for the writer. A task read
-- back carries its own reason while it has one (the stages it waits for, a
-- retry delay not yet run out) and its shape's otherwise; what placement
-- wrote on tasks before is no longer read.
--
-- A row is found by its shape's columns (a task's read looks it up by
-- those of bounded size) and written by `shape`, a digest of them all: the
-- labels and the GPU model have no length limit, too long for a key of the
-- columns themselves.
CREATE TABLE shape_waits (
    shape             TEXT PRIMARY KEY,    -- hex SHA-256 of the columns below
    tenant            TEXT NOT NULL,
    task_type         TEXT NOT NULL,
    cpu_millis        INTEGER NOT NULL,
    memory_bytes      INTEGER NOT NULL,
    gpu_count         INTEGER NOT NULL,
    gpu_model         TEXT NOT NULL,       -- '' for any model
    gpu_memory_bytes  INTEGER NOT NULL,
    worker_labels     TEXT NOT NULL,       -- JSON, as on the task
    avoid_worker      TEXT NOT NULL,       -- the worker passed over, or ''
    waiting           TEXT NOT NULL        -- JSON Waiting
);
CREATE INDEX shape_waits_by_request
    ON shape_waits (tenant, task_type, cpu_millis, memory_bytes, gpu_count, gpu_memory_bytes);
