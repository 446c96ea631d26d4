-- Who a worker serves, and with what.
--
-- A worker token either belongs to its tenant (shared = 0: its workers only
-- ever see that tenant's tasks) or is an operator's token for shared workers
-- (shared = 1). Worker tokens made before this were served every tenant:
-- they stay shared.
ALTER TABLE tokens ADD COLUMN shared BIGINT NOT NULL DEFAULT 0;
UPDATE tokens SET shared = 1 WHERE role = 'worker';

-- A registration belongs to the token that made it (only that token may
-- heartbeat, claim, report or deregister under it) and to that token's pool:
-- pool_tenant is the tenant whose tasks it runs, NULL for a shared worker.
-- served is the JSON ServedTypes the server decided from the plugins the
-- worker reported: each task type routed to it, with the plugin (name,
-- version, digest, local) it runs it with. Registrations made before this
-- belong to no token: they end, and their workers register again.
ALTER TABLE workers ADD COLUMN token_id TEXT;
ALTER TABLE workers ADD COLUMN pool_tenant TEXT;
ALTER TABLE workers ADD COLUMN served TEXT NOT NULL DEFAULT '{"types":{}}';
UPDATE workers SET state = 'gone' WHERE state = 'live';

-- The plugin (JSON PluginRef) that runs a task's current attempt, as the
-- claim routed it, and the one that ran each ended attempt.
ALTER TABLE tasks ADD COLUMN plugin TEXT;
ALTER TABLE task_attempts ADD COLUMN plugin TEXT;
