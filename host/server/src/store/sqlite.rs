//! SQL that is SQLite's own. Writers are serialised by SQLite, so the claim is
//! one `UPDATE … RETURNING` whose subqueries see a consistent snapshot; JSON
//! lists are expanded with `json_each`. The claim finds the tenants with
//! pending work by skipping through an index (a recursive `MIN`); for each
//! tenant and each task type the worker serves it reads a window of the
//! oldest pending rows from the index (`win`), keeps the first that fit,
//! in window order (no `ORDER BY`, so the walk stops there), and orders
//! them all by fair-share tag. The index carries what most often rules a
//! task out (its retry delay, CPU, memory and GPU count), so a task that
//! does not fit the worker's free capacity is passed over in the index,
//! without reading its row; the worker's GPUs are read out of its JSON once
//! per claim (`gpus`), not once per candidate. A worker with no free slot
//! looks at no window. A
//! unary `+` keeps the planner off an index where another is far narrower
//! (`+worker_id`: look the completed tasks up by id, not every task the
//! worker holds; `ORDER BY +id`: find the expired leases through their
//! index and sort the few found, rather than walk every task in id order to
//! skip the sort).

use super::Dialect;

/// SQLite's statements.
pub(crate) static DIALECT: Dialect = Dialect {
    begin_write: "BEGIN IMMEDIATE",
    claim: r#"
WITH RECURSIVE w AS (
    SELECT id, name, slots + read_ahead AS slots, cpu_millis, memory_bytes, gpu_count, hardware, task_types, labels,
           pool_tenant, served
    FROM workers WHERE id = $1 AND state = 'live' AND token_id = $6
),
used AS (
    SELECT COUNT(*) AS n, COALESCE(SUM(cpu_millis), 0) AS cpu,
           COALESCE(SUM(memory_bytes), 0) AS mem, COALESCE(SUM(gpu_count), 0) AS gpu
    FROM tasks WHERE worker_id = $1 AND state IN ('running', 'cancelling')
),
gpus AS MATERIALIZED (
    SELECT json_extract(g.value, '$.memoryBytes') AS memory,
           lower(json_extract(g.value, '$.model')) AS model
    FROM w, json_each(w.hardware, '$.gpus') g
),
v AS (
    SELECT COALESCE((SELECT pass FROM tenant_shares WHERE tenant = ''), 0) AS pass
),
tenants(tenant) AS (
    SELECT MIN(tenant) FROM tasks
    WHERE state = 'pending' AND blocked = 0
      AND ((SELECT pool_tenant FROM w) IS NULL OR tenant = (SELECT pool_tenant FROM w))
    UNION ALL
    SELECT (SELECT MIN(p.tenant) FROM tasks p
            WHERE p.state = 'pending' AND p.blocked = 0 AND p.tenant > tenants.tenant
              AND ((SELECT pool_tenant FROM w) IS NULL OR p.tenant = (SELECT pool_tenant FROM w)))
    FROM tenants WHERE tenants.tenant IS NOT NULL
),
cand AS (
    SELECT t.seq, t.tenant, t.cpu_millis, t.memory_bytes, t.gpu_count
    FROM tenants tn, json_each((SELECT task_types FROM w)) ty
    JOIN tasks t ON t.seq IN (
        SELECT c.seq FROM (
            SELECT x.seq, x.run_after, x.cpu_millis, x.memory_bytes, x.gpu_count FROM tasks x
            WHERE x.tenant = tn.tenant AND x.task_type = ty.value
              AND x.state = 'pending' AND x.blocked = 0
            ORDER BY x.seq
            LIMIT $13) win
        JOIN tasks c ON c.seq = win.seq
        WHERE win.run_after <= $2
          AND win.cpu_millis <= (SELECT w.cpu_millis - used.cpu FROM w, used)
          AND win.memory_bytes <= (SELECT w.memory_bytes - used.mem FROM w, used)
          AND (win.gpu_count = 0 OR win.gpu_count <= (SELECT w.gpu_count - used.gpu FROM w, used))
          AND (c.tenant = (SELECT pool_tenant FROM w)
               OR ((SELECT pool_tenant FROM w) IS NULL
                   AND (c.tenant IN (SELECT value FROM json_each($7))) <> $8))
          AND (c.avoid_worker IS NULL OR c.avoid_until <= $2
               OR c.avoid_worker <> (SELECT name FROM w))
          AND (c.worker_labels = '{}' OR NOT EXISTS (
                SELECT 1 FROM json_each(c.worker_labels) r
                WHERE r.value IS NOT (SELECT l.value FROM json_each((SELECT labels FROM w)) l
                                      WHERE l.key = r.key)))
          AND (c.gpu_count = 0 OR c.gpu_count <= (
                SELECT COUNT(*) FROM gpus
                WHERE gpus.memory >= c.gpu_memory_bytes
                  AND (c.gpu_model IS NULL OR instr(gpus.model, lower(c.gpu_model)) > 0)))
        LIMIT $5)
    -- A worker with no free slot looks at nothing.
    WHERE (SELECT w.slots - used.n FROM w, used) > 0
),
ranked AS (
    SELECT cand.seq, cand.tenant, cand.cpu_millis, cand.memory_bytes, cand.gpu_count,
           ROW_NUMBER() OVER (PARTITION BY cand.tenant ORDER BY cand.seq) AS rank,
           MAX(COALESCE(s.pass, 0), v.pass) AS start,
           COALESCE(json_extract($9, '$."' || cand.tenant || '"'), $10) AS stride,
           COALESCE(json_extract($11, '$."' || cand.tenant || '"'), $12) AS cap
    FROM cand LEFT JOIN tenant_shares s ON s.tenant = cand.tenant, v
),
eligible AS (
    SELECT seq, cpu_millis, memory_bytes, gpu_count, start + (rank - 1) * stride AS tag
    FROM ranked
    WHERE cap = 0
       OR rank + (SELECT COUNT(*) FROM tasks r
                  WHERE r.tenant = ranked.tenant AND r.state IN ('running', 'cancelling')) <= cap
),
fit AS (
    SELECT seq,
           ROW_NUMBER() OVER o AS n,
           SUM(cpu_millis) OVER o AS cpu,
           SUM(memory_bytes) OVER o AS mem,
           SUM(gpu_count) OVER o AS gpu
    FROM eligible WINDOW o AS (ORDER BY tag, seq)
)
UPDATE tasks SET
    state = 'running',
    worker_id = $1,
    worker_name = (SELECT name FROM w),
    lease_token = lower(hex(randomblob(16))),
    lease_expires_at = $3,
    started_at = $2,
    updated_at = $2,
    waiting = NULL,
    waiting_kind = NULL,
    plugin = json_extract((SELECT served FROM w), '$.types."' || task_type || '"')
WHERE seq IN (
    SELECT fit.seq FROM fit, w, used
    WHERE fit.n <= MIN($4, w.slots - used.n)
      AND fit.cpu <= w.cpu_millis - used.cpu
      AND fit.mem <= w.memory_bytes - used.mem
      AND fit.gpu <= w.gpu_count - used.gpu
)
RETURNING id, tenant, task_type, spec, attempt, lease_token, timeout_ms,
          cpu_millis, memory_bytes, gpu_count, gpu_model, gpu_memory_bytes
"#,
    // One writer at a time: nothing to lock.
    worker_of_token_for_update: super::sql::WORKER_OF_TOKEN,
    fenced_tasks: r#"
SELECT seq, id, tenant, task_type, state, attempt, max_attempts, worker_name, started_at, plugin,
       lease_token
FROM tasks
WHERE id IN (SELECT value FROM json_each($1)) AND +worker_id = $2
  AND state IN ('running', 'cancelling') AND lease_expires_at >= $3
ORDER BY id
"#,
    renew_leases: r#"
UPDATE tasks SET lease_expires_at = $3
WHERE worker_id = $1 AND state IN ('running', 'cancelling')
  AND lease_token IN (SELECT value FROM json_each($2))
RETURNING id, state, lease_token
"#,
    held_leases: r#"
SELECT id, lease_token FROM tasks
WHERE worker_id = $1 AND state IN ('running', 'cancelling')
  AND lease_token IN (SELECT value FROM json_each($2))
"#,
    expired_leases: r#"
SELECT seq, id, tenant, task_type, state, attempt, max_attempts, worker_name, started_at, plugin
FROM tasks
WHERE state IN ('running', 'cancelling') AND lease_expires_at < $1
ORDER BY +id LIMIT 500
"#,
    task_for_update: r#"
SELECT seq, id, tenant, task_type, state, attempt, max_attempts, worker_name, started_at, plugin
FROM tasks WHERE id = $1
"#,
    stages_of_workflows: concat!(
        "SELECT ",
        super::sql::task_columns!("$2"),
        " FROM tasks t WHERE workflow_id IN (SELECT value FROM json_each($1)) ORDER BY workflow_id, seq"
    ),
    workflows_by_ids: "SELECT * FROM workflows WHERE id IN (SELECT value FROM json_each($1))",
    workflow_tasks_for_update: r#"
SELECT seq, id, tenant, task_type, state, attempt, max_attempts, worker_name, started_at, plugin
FROM tasks WHERE workflow_id = $1 AND state IN ('pending', 'running')
ORDER BY id
"#,
    tasks_of_worker: r#"
SELECT seq, id, tenant, task_type, state, attempt, max_attempts, worker_name, started_at, plugin
FROM tasks WHERE state IN ('running', 'cancelling') AND worker_id = $1
ORDER BY id
"#,
    list_tasks: concat!(
        "SELECT ",
        super::sql::task_columns!("$8"),
        r#" FROM tasks t
WHERE tenant = $1
  AND ($2 IS NULL OR state = $2)
  AND ($3 IS NULL OR task_type = $3)
  AND ($4 IS NULL OR json_extract(labels, '$."' || $4 || '"') = $5)
  AND seq < $6
ORDER BY seq DESC
LIMIT $7
"#
    ),
    browse_tasks: concat!(
        "SELECT ",
        super::sql::task_columns!("$10"),
        r#" FROM tasks t
WHERE tenant = $1
  AND seq < $6 AND seq >= $7
  AND ($2 IS NULL OR state = $2)
  AND ($3 IS NULL OR task_type = $3)
  AND ($4 IS NULL OR json_extract(labels, '$."' || $4 || '"') = $5)
  AND ($8 IS NULL OR instr(name, $8) > 0)
ORDER BY seq DESC
LIMIT $9
"#
    ),
};
