//! SQL that is PostgreSQL's own. The claim locks the candidate rows with
//! `FOR UPDATE SKIP LOCKED` (a window of the oldest of each tenant and task
//! type, in a `LATERAL` subquery, as on SQLite), so
//! concurrent claimers (workers, or servers sharing the database) never wait
//! on, or double-claim, each other's rows;
//! the worker's own row is locked too, so its free capacity is computed once
//! per claim. The window's index carries the task's retry delay, CPU,
//! memory and GPU count, so a task too big for the worker is ruled out
//! before its row is read; the row's own terms are checked again once it is
//! locked. JSON lists are expanded with `jsonb_array_elements_text`.

use super::Dialect;

/// PostgreSQL's statements.
pub(crate) static DIALECT: Dialect = Dialect {
    begin_write: "BEGIN",
    claim: r#"
WITH RECURSIVE w AS (
    SELECT id, name, slots + read_ahead AS slots, cpu_millis, memory_bytes, gpu_count, hardware, task_types, labels,
           pool_tenant, served
    FROM workers WHERE id = $1 AND state = 'live' AND token_id = $6
    FOR UPDATE
),
used AS (
    SELECT COUNT(*) AS n, COALESCE(SUM(cpu_millis), 0) AS cpu,
           COALESCE(SUM(memory_bytes), 0) AS mem, COALESCE(SUM(gpu_count), 0) AS gpu
    FROM tasks WHERE worker_id = $1 AND state IN ('running', 'cancelling')
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
    SELECT c.* FROM tenants tn
    CROSS JOIN LATERAL jsonb_array_elements_text((SELECT task_types FROM w)::jsonb) ty(task_type)
    CROSS JOIN LATERAL (
        SELECT t.seq, t.tenant, t.cpu_millis, t.memory_bytes, t.gpu_count
        FROM (SELECT x.seq, x.run_after, x.cpu_millis, x.memory_bytes, x.gpu_count FROM tasks x
              WHERE x.tenant = tn.tenant AND x.task_type = ty.task_type
                AND x.state = 'pending' AND x.blocked = 0
              ORDER BY x.seq
              LIMIT $13) win
        JOIN tasks t ON t.seq = win.seq, w, used
        -- What the index carries rules a task out before its row is read.
        WHERE win.run_after <= $2
          AND win.cpu_millis <= w.cpu_millis - used.cpu
          AND win.memory_bytes <= w.memory_bytes - used.mem
          AND (win.gpu_count = 0 OR win.gpu_count <= w.gpu_count - used.gpu)
          AND t.state = 'pending' AND t.blocked = 0
          AND (t.tenant = w.pool_tenant
               OR (w.pool_tenant IS NULL
                   AND (t.tenant IN (SELECT jsonb_array_elements_text($7::jsonb))) <> ($8::bigint = 1)))
          AND t.run_after <= $2
          AND (t.avoid_worker IS NULL OR t.avoid_worker <> w.name OR t.avoid_until <= $2)
          AND (t.worker_labels = '{}' OR w.labels::jsonb @> t.worker_labels::jsonb)
          AND t.cpu_millis <= w.cpu_millis - used.cpu
          AND t.memory_bytes <= w.memory_bytes - used.mem
          AND (t.gpu_count = 0 OR (
                t.gpu_count <= w.gpu_count - used.gpu
            AND t.gpu_count <= (
                  SELECT COUNT(*) FROM jsonb_array_elements(w.hardware::jsonb -> 'gpus') g(device)
                  WHERE (g.device ->> 'memoryBytes')::bigint >= t.gpu_memory_bytes
                    AND (t.gpu_model IS NULL
                         OR strpos(lower(g.device ->> 'model'), lower(t.gpu_model)) > 0))))
        ORDER BY t.seq
        LIMIT $5
        FOR UPDATE OF t SKIP LOCKED
    ) c
),
ranked AS (
    SELECT cand.seq, cand.tenant, cand.cpu_millis, cand.memory_bytes, cand.gpu_count,
           ROW_NUMBER() OVER (PARTITION BY cand.tenant ORDER BY cand.seq) AS rank,
           GREATEST(COALESCE(s.pass, 0), v.pass) AS start,
           COALESCE(($9::jsonb ->> cand.tenant)::bigint, $10::bigint) AS stride,
           COALESCE(($11::jsonb ->> cand.tenant)::bigint, $12::bigint) AS cap
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
),
chosen AS (
    SELECT fit.seq FROM fit, w, used
    WHERE fit.n <= LEAST($4, w.slots - used.n)
      AND fit.cpu <= w.cpu_millis - used.cpu
      AND fit.mem <= w.memory_bytes - used.mem
      AND fit.gpu <= w.gpu_count - used.gpu
)
UPDATE tasks t SET
    state = 'running',
    worker_id = $1,
    worker_name = (SELECT name FROM w),
    lease_token = replace(gen_random_uuid()::text, '-', ''),
    lease_expires_at = $3,
    started_at = $2,
    updated_at = $2,
    waiting = NULL,
    waiting_kind = NULL,
    plugin = ((SELECT served FROM w)::jsonb -> 'types' -> t.task_type)::text
FROM chosen
WHERE t.seq = chosen.seq
RETURNING t.id, t.tenant, t.task_type, t.spec, t.attempt, t.lease_token, t.timeout_ms,
          t.cpu_millis, t.memory_bytes, t.gpu_count, t.gpu_model, t.gpu_memory_bytes
"#,
    worker_of_token_for_update: "SELECT id FROM workers WHERE id = $1 AND token_id = $2 FOR UPDATE",
    fenced_tasks: r#"
SELECT seq, id, tenant, task_type, state, attempt, max_attempts, worker_name, started_at, plugin,
       lease_token
FROM tasks
WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)) AND worker_id = $2
  AND state IN ('running', 'cancelling') AND lease_expires_at >= $3
ORDER BY id
FOR UPDATE
"#,
    renew_leases: r#"
UPDATE tasks SET lease_expires_at = $3
WHERE worker_id = $1 AND state IN ('running', 'cancelling')
  AND lease_token IN (SELECT jsonb_array_elements_text($2::jsonb))
RETURNING id, state, lease_token
"#,
    held_leases: r#"
SELECT id, lease_token FROM tasks
WHERE worker_id = $1 AND state IN ('running', 'cancelling')
  AND lease_token IN (SELECT jsonb_array_elements_text($2::jsonb))
"#,
    expired_leases: r#"
SELECT seq, id, tenant, task_type, state, attempt, max_attempts, worker_name, started_at, plugin
FROM tasks
WHERE state IN ('running', 'cancelling') AND lease_expires_at < $1
ORDER BY id LIMIT 500
FOR UPDATE SKIP LOCKED
"#,
    task_for_update: r#"
SELECT seq, id, tenant, task_type, state, attempt, max_attempts, worker_name, started_at, plugin
FROM tasks WHERE id = $1
FOR UPDATE
"#,
    stages_of_workflows: concat!(
        "SELECT ",
        super::sql::task_columns!("$2"),
        " FROM tasks t WHERE workflow_id IN (SELECT jsonb_array_elements_text($1::jsonb)) ORDER BY workflow_id, seq"
    ),
    workflows_by_ids: "SELECT * FROM workflows WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb))",
    workflow_tasks_for_update: r#"
SELECT seq, id, tenant, task_type, state, attempt, max_attempts, worker_name, started_at, plugin
FROM tasks WHERE workflow_id = $1 AND state IN ('pending', 'running')
ORDER BY id
FOR UPDATE
"#,
    tasks_of_worker: r#"
SELECT seq, id, tenant, task_type, state, attempt, max_attempts, worker_name, started_at, plugin
FROM tasks WHERE state IN ('running', 'cancelling') AND worker_id = $1
ORDER BY id
FOR UPDATE
"#,
    list_tasks: concat!(
        "SELECT ",
        super::sql::task_columns!("$8"),
        r#" FROM tasks t
WHERE tenant = $1
  AND ($2::text IS NULL OR state = $2::text)
  AND ($3::text IS NULL OR task_type = $3::text)
  AND ($4::text IS NULL OR (labels::jsonb ->> $4::text) = $5::text)
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
  AND ($2::text IS NULL OR state = $2::text)
  AND ($3::text IS NULL OR task_type = $3::text)
  AND ($4::text IS NULL OR (labels::jsonb ->> $4::text) = $5::text)
  AND ($8::text IS NULL OR strpos(name, $8::text) > 0)
ORDER BY seq DESC
LIMIT $9
"#
    ),
};
