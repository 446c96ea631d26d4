-- The claim's window index also carries what most often rules a pending
-- task out for a worker: its retry delay, CPU, memory and GPU count. A
-- claim passes over a task that does not fit the worker's free capacity in
-- the index (an index-only scan where the table's pages are all visible):
-- a window of tasks too big for the worker costs a short index walk.
DROP INDEX tasks_pending_by_tenant_type;
CREATE INDEX tasks_pending_window ON tasks (tenant, task_type, seq)
    INCLUDE (run_after, cpu_millis, memory_bytes, gpu_count)
    WHERE state = 'pending' AND blocked = 0;
