-- Fair shares between tenants. Each tenant with work has a pass: how much
-- of the fleet it has been given, in strides of 1,000,000 / weight per task
-- started. A claim takes the pending tasks with the lowest passes first, so
-- tenants are served in turn, by weight, whatever their backlogs. The row
-- of tenant '' holds the virtual time: the pass of the tenant served last,
-- which a tenant returning after a pause starts from (it keeps no credit).
CREATE TABLE tenant_shares (
    tenant  TEXT PRIMARY KEY,
    pass    BIGINT NOT NULL
);

-- The claim walks each tenant's pending tasks oldest first, and finds the
-- tenants with pending work by skipping through this index.
CREATE INDEX tasks_pending_by_tenant ON tasks (tenant, seq) WHERE state = 'pending';
-- Tasks each tenant runs now, for its limit of running tasks.
CREATE INDEX tasks_running_by_tenant ON tasks (tenant) WHERE state IN ('running', 'cancelling');
