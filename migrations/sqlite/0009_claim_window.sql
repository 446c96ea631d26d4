-- A claim looks at each tenant's pending tasks type by type, a bounded
-- window of the oldest of each type: one short index walk per tenant and
-- task type the worker serves, whatever the depth of the queue and however
-- few of its tasks fit the worker. Blocked workflow stages are never
-- claimed, so they are not in the index either.
DROP INDEX tasks_pending_by_tenant;
CREATE INDEX tasks_pending_by_tenant_type ON tasks (tenant, task_type, seq)
    WHERE state = 'pending' AND blocked = 0;
