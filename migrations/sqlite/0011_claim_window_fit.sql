-- The claim's window index also carries what most often rules a pending
-- task out for a worker: its retry delay, CPU, memory and GPU count. A
-- claim passes over a task that does not fit the worker's free capacity in
-- the index, without reading the task's row: a window of tasks too big for
-- the worker (waiting for a bigger one) costs a short index walk.
DROP INDEX tasks_pending_by_tenant_type;
CREATE INDEX tasks_pending_window
    ON tasks (tenant, task_type, seq, run_after, cpu_millis, memory_bytes, gpu_count)
    WHERE state = 'pending' AND blocked = 0;
