//! Statements that read the same on SQLite and PostgreSQL (`$n` parameters,
//! `RETURNING`, `ON CONFLICT`). What differs is in the [`Dialect`](super::Dialect)s.

/// Why a task (named `t`) waits at `$now`: its own reason while it has
/// one (the stages it waits for, a retry delay not run out), else, if it
/// is pending and not held back, the reason recorded for its shape
/// ([`SHAPE_WAITS`]). Anything else on the task's row is not its own: what
/// placement once wrote there is not read.
macro_rules! waiting_now {
    ($now:literal) => {
        concat!(
            "COALESCE(
    CASE WHEN t.blocked <> 0 OR (t.waiting_kind = 'retry_backoff' AND t.run_after > ",
            $now,
            ") THEN t.waiting END,
    (SELECT s.waiting FROM shape_waits s
     WHERE t.state = 'pending' AND t.blocked = 0 AND s.tenant = t.tenant
       AND s.task_type = t.task_type AND s.cpu_millis = t.cpu_millis
       AND s.memory_bytes = t.memory_bytes AND s.gpu_count = t.gpu_count
       AND s.gpu_model = COALESCE(t.gpu_model, '') AND s.gpu_memory_bytes = t.gpu_memory_bytes
       AND s.worker_labels = t.worker_labels
       AND s.avoid_worker = COALESCE(CASE WHEN t.avoid_until > ",
            $now,
            " THEN t.avoid_worker END, '')
     LIMIT 1)
)"
        )
    };
}
pub(super) use waiting_now;

/// The columns a task is read back with: every column of `tasks` (named
/// `t`), and `waiting_now`, why it waits at `$now` ([`waiting_now`]).
macro_rules! task_columns {
    ($now:literal) => {
        concat!("t.*, ", super::sql::waiting_now!($now), " AS waiting_now")
    };
}
pub(super) use task_columns;

pub(super) const INSERT_TOKEN: &str = "\
INSERT INTO tokens (id, hash, tenant, role, name, created_at, shared, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
/// The token whose secret hashes to `$1`, if it is neither revoked nor
/// expired at `$2`.
pub(super) const TOKEN_BY_HASH: &str = "\
SELECT id, tenant, role, shared, expires_at FROM tokens
WHERE hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)";
pub(super) const LIST_TOKENS: &str = "\
SELECT id, tenant, role, shared, name, created_at, expires_at, revoked_at FROM tokens
ORDER BY created_at, id";
/// Revokes token `$1` at `$2` if it is not revoked yet.
pub(super) const REVOKE_TOKEN: &str =
    "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING role";
pub(super) const TOKEN_BY_ID: &str = "SELECT id, role, revoked_at FROM tokens WHERE id = $1";
/// Admin tokens other than `$1` that are neither revoked nor expired at `$2`.
pub(super) const OTHER_LIVE_ADMINS: &str = "\
SELECT COUNT(*) FROM tokens WHERE role = 'admin' AND id <> $1 AND revoked_at IS NULL
  AND (expires_at IS NULL OR expires_at > $2)";
pub(super) const COUNT_ADMIN_TOKENS: &str = "SELECT COUNT(*) FROM tokens WHERE role = 'admin'";

pub(super) const UPSERT_PLUGIN: &str = "\
INSERT INTO plugins (name, version, digest, manifest, imports, component, installed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (name) DO UPDATE SET version = excluded.version, digest = excluded.digest,
    manifest = excluded.manifest, imports = excluded.imports, component = excluded.component,
    installed_at = excluded.installed_at";
pub(super) const LIST_PLUGINS: &str =
    "SELECT name, version, digest, manifest, imports, installed_at FROM plugins ORDER BY name";
pub(super) const PLUGIN_COMPONENT: &str = "SELECT component FROM plugins WHERE digest = $1 LIMIT 1";
pub(super) const DELETE_PLUGIN: &str = "DELETE FROM plugins WHERE name = $1";

/// How many tasks each tenant runs now.
pub(super) const RUNNING_BY_TENANT: &str = "\
SELECT tenant, COUNT(*) AS n FROM tasks WHERE state IN ('running', 'cancelling') GROUP BY tenant";
/// Charges the tenants a claim served: `served(tenant, charge)`, a `VALUES`
/// list of [`padded_chunks`] rows, follows `WITH`, then this. Each tenant's
/// pass advances by its charge from where it is, or from the virtual time
/// (the pass of tenant `''`) if it lags that; the virtual time moves up to
/// the smallest pass a charge started from. Each pass is advanced from the
/// row as the update finds it, so two servers charging the same tenant on
/// PostgreSQL both count; rows are written in one order, the tenants by
/// name and the virtual time last, so two such charges never lock each
/// other's rows crosswise. At most 256 tenants (a claim's most tasks): a
/// second statement would start from the virtual time the first moved.
pub(super) const CHARGE_TENANTS: &str = "
clock(pass) AS (SELECT COALESCE((SELECT pass FROM tenant_shares WHERE tenant = ''), 0)),
charged AS (
    SELECT served.tenant, served.charge,
           CASE WHEN s.pass > clock.pass THEN s.pass ELSE clock.pass END AS start
    FROM served CROSS JOIN clock LEFT JOIN tenant_shares s ON s.tenant = served.tenant
    WHERE served.tenant IS NOT NULL
)
INSERT INTO tenant_shares (tenant, pass)
SELECT tenant, pass FROM (
    SELECT tenant, start + charge AS pass FROM charged
    UNION ALL
    SELECT '', MIN(start) FROM charged HAVING COUNT(*) > 0
) written WHERE true
ORDER BY tenant = '', tenant
ON CONFLICT (tenant) DO UPDATE SET pass = CASE
    WHEN excluded.tenant = '' THEN
        CASE WHEN excluded.pass > tenant_shares.pass THEN excluded.pass ELSE tenant_shares.pass END
    ELSE
        CASE WHEN tenant_shares.pass > (SELECT pass FROM clock) THEN tenant_shares.pass
             ELSE (SELECT pass FROM clock) END
        + (SELECT charge FROM charged WHERE charged.tenant = excluded.tenant)
    END";

pub(super) const INSERT_WORKER: &str = "\
INSERT INTO workers (id, name, state, capabilities, task_types, hardware, labels, slots,
    cpu_millis, memory_bytes, gpu_count, version, registered_at, heartbeat_at, token_id,
    pool_tenant, served, read_ahead)
VALUES ($1, $2, 'live', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15, $16)";
/// A live worker named `$1` registered with a token other than `$2`.
pub(super) const LIVE_WORKER_NAMED_BY_OTHERS: &str = "\
SELECT id FROM workers WHERE name = $1 AND state = 'live' AND COALESCE(token_id, '') <> $2
LIMIT 1";
/// Earlier live registrations named `$1` of token `$3`, other than `$2`.
pub(super) const RETIRE_WORKERS_NAMED: &str = "\
UPDATE workers SET state = 'gone' WHERE name = $1 AND id <> $2 AND state = 'live' AND token_id = $3
RETURNING id";
pub(super) const TOUCH_WORKER: &str =
    "UPDATE workers SET heartbeat_at = $2 WHERE id = $1 AND state = 'live' AND token_id = $3";
/// Whether registration `$1` belongs to token `$2` (live or not).
pub(super) const WORKER_OF_TOKEN: &str = "SELECT id FROM workers WHERE id = $1 AND token_id = $2";
/// Ends registration `$1` of token `$2` if it is live.
pub(super) const DEREGISTER_WORKER: &str = "\
UPDATE workers SET state = 'gone' WHERE id = $1 AND token_id = $2 AND state = 'live' RETURNING id";
/// Reroutes registration `$1` if its capabilities are still `$5`.
pub(super) const REROUTE_WORKER: &str = "\
UPDATE workers SET capabilities = $2, task_types = $3, served = $4
WHERE id = $1 AND state = 'live' AND capabilities = $5";
pub(super) const UPDATE_WORKER_CAPABILITIES: &str =
    "UPDATE workers SET capabilities = $2, task_types = $3, served = $4 WHERE id = $1";
pub(super) const UPDATE_WORKER_LABELS: &str = "UPDATE workers SET labels = $2 WHERE id = $1";
pub(super) const UPDATE_WORKER_HARDWARE: &str = "\
UPDATE workers SET hardware = $2, cpu_millis = $3, memory_bytes = $4, gpu_count = $5
WHERE id = $1";
pub(super) const EXPIRE_WORKERS: &str =
    "UPDATE workers SET state = 'gone' WHERE state = 'live' AND heartbeat_at < $1 RETURNING id";
pub(super) const LIST_WORKERS: &str = "SELECT * FROM workers ORDER BY name, registered_at DESC";
pub(super) const LIVE_WORKERS: &str = "SELECT * FROM workers WHERE state = 'live' ORDER BY name";
pub(super) const WORKER_BY_ID: &str = "SELECT * FROM workers WHERE id = $1";
pub(super) const NEWEST_WORKER_NAMED: &str =
    "SELECT * FROM workers WHERE name = $1 ORDER BY registered_at DESC, id DESC LIMIT 1";
pub(super) const RUNNING_BY_WORKER: &str = "\
SELECT worker_id, COUNT(*) AS n, CAST(COALESCE(SUM(cpu_millis), 0) AS BIGINT) AS cpu,
       CAST(COALESCE(SUM(memory_bytes), 0) AS BIGINT) AS mem,
       CAST(COALESCE(SUM(gpu_count), 0) AS BIGINT) AS gpu
FROM tasks WHERE state IN ('running', 'cancelling') AND worker_id IS NOT NULL
GROUP BY worker_id";
pub(super) const INSERT_TASKS: &str = "\
INSERT INTO tasks (id, tenant, name, labels, task_type, spec, cpu_millis, memory_bytes, gpu_count,
    gpu_model, gpu_memory_bytes, worker_labels, timeout_ms, max_attempts, state, attempt,
    run_after, created_at, updated_at, workflow_id, stage, stage_plan, blocked, waiting,
    waiting_kind) VALUES ";
/// Parameters per row of [`INSERT_TASKS`].
pub(super) const TASK_PARAMS: usize = 23;

/// One row of [`INSERT_TASKS`] whose parameters start after `base`: 14
/// values, the time three times, then the 6 workflow columns.
pub(super) fn task_row(marks: Marks, base: usize) -> String {
    format!(
        "({}, 'pending', 1, {})",
        marks.list(base, 14),
        marks.list(base + 14, 9)
    )
}

/// How a statement built here marks its parameters. Numbered (`$1`, as
/// PostgreSQL wants) costs more than linear in their number on SQLite, where
/// sqlx looks each one's name up; there the many-row statements use
/// positional `?` marks, bound in the order they appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Marks {
    /// `$1, $2, …`.
    Numbered,
    /// `?, ?, …`.
    Positional,
}

impl Marks {
    /// The marks a statement on `tx`'s backend takes.
    pub(super) fn of(tx: &super::write_tx::WriteTx<'_>) -> Self {
        if tx.is_sqlite() {
            Self::Positional
        } else {
            Self::Numbered
        }
    }

    /// The `VALUES` rows of a multi-row statement: `rows` parenthesised
    /// lists of `width` marks each, comma-separated (`($1, $2), ($3, $4)`).
    pub(super) fn rows(self, rows: usize, width: usize) -> String {
        (0..rows)
            .map(|row| format!("({})", self.list(row * width, width)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The marks of the parameters `base + 1` to `base + count`.
    pub(super) fn list(self, base: usize, count: usize) -> String {
        (base + 1..=base + count)
            .map(|n| match self {
                Self::Numbered => format!("${n}"),
                Self::Positional => "?".to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The most parameters one multi-row statement binds (see [`Marks`] for why
/// it matters on SQLite).
const STATEMENT_PARAMETERS: usize = 2048;

/// Splits `items`, each `parameters` bound values of a multi-row statement,
/// into chunks of a few fixed sizes, so that such statements come in a
/// handful of shapes each connection prepares once, and none binds more
/// than [`STATEMENT_PARAMETERS`].
pub(super) fn fixed_chunks<T>(items: &[T], parameters: usize) -> Vec<&[T]> {
    let largest = rows_per_statement(parameters);
    let mut chunks = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(chunk_size(rest.len(), largest));
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// The most rows of `parameters` values one statement takes.
pub(super) fn rows_per_statement(parameters: usize) -> usize {
    (STATEMENT_PARAMETERS / parameters.max(1)).max(1)
}

/// The shapes of multi-row statements, in rows, largest first.
const SIZES: [usize; 9] = [256, 128, 64, 32, 16, 8, 4, 2, 1];

/// The size of the next of [`fixed_chunks`]' chunks when `remaining` items
/// are left: the largest power of two that fits, so `n` items take as many
/// statements as `n` has one bits (a batch of 40 submitted tasks is stored
/// with two statements, 32 and 8, not four). Every statement costs a trip
/// to SQLite's thread, and nine shapes per statement still fit the
/// connection's statement cache.
pub(super) fn chunk_size(remaining: usize, largest: usize) -> usize {
    SIZES
        .into_iter()
        .find(|size| *size <= remaining && *size <= largest)
        .unwrap_or(1)
}

/// Splits `items`, each `parameters` bound values of a multi-row statement,
/// into as few statements as fit (one for up to 256 rows), each written
/// with `size` rows, the next of a few fixed sizes: the rows past the chunk's
/// items are padding, all `NULL`, which the statement must ignore (a
/// `WHERE` on a column no real row leaves `NULL`, or a join no `NULL`
/// matches). Where [`fixed_chunks`] writes 40 rows in two statements, this
/// writes one of 64 rows: binding `NULL`s costs far less than another trip
/// to SQLite's thread.
pub(super) fn padded_chunks<T>(items: &[T], parameters: usize) -> Vec<Padded<'_, T>> {
    let largest = chunk_size(usize::MAX, rows_per_statement(parameters));
    items
        .chunks(largest)
        .map(|items| Padded {
            items,
            parameters,
            size: SIZES
                .into_iter()
                .rev()
                .find(|size| *size >= items.len())
                .unwrap_or(largest),
        })
        .collect()
}

/// One statement's rows of [`padded_chunks`].
pub(super) struct Padded<'a, T> {
    /// The items, in order.
    items: &'a [T],
    /// Bound values per row.
    parameters: usize,
    /// The rows the statement is written with, `items.len()` or more.
    size: usize,
}

impl<'a, T> Padded<'a, T> {
    /// The statement's `VALUES` rows, marked for `marks`' backend.
    pub fn values(&self, marks: Marks) -> String {
        marks.rows(self.size, self.parameters)
    }

    /// Each row of the statement: an item, then `None` for each padding row.
    pub fn rows(&self) -> impl Iterator<Item = Option<&'a T>> + use<'a, T> {
        let items = self.items;
        items
            .iter()
            .map(Some)
            .chain(std::iter::repeat_n(None, self.size - items.len()))
    }
}

/// Tenant `$1`'s pending tasks, stages held back included.
pub(super) const PENDING_OF_TENANT: &str =
    "SELECT COUNT(*) FROM tasks WHERE tenant = $1 AND state = 'pending'";
/// Task `$1`, as of `$2`.
pub(super) const TASK_BY_ID: &str = concat!(
    "SELECT ",
    task_columns!("$2"),
    " FROM tasks t WHERE id = $1"
);
pub(super) const ATTEMPTS_OF_TASK: &str = "\
SELECT attempt, worker_name, started_at, finished_at, outcome, error, plugin
FROM task_attempts WHERE task_id = $1 ORDER BY attempt";
/// Ended attempts: `VALUES` rows of 8 parameters follow, then
/// [`INSERT_ATTEMPTS_END`].
pub(super) const INSERT_ATTEMPTS: &str = "\
INSERT INTO task_attempts (task_id, attempt, worker_name, started_at, finished_at, outcome, error,
    plugin)
SELECT * FROM (VALUES ";
/// The end of [`INSERT_ATTEMPTS`]: padding rows ([`padded_chunks`]) have no
/// task.
pub(super) const INSERT_ATTEMPTS_END: &str =
    ") AS v WHERE v.column1 IS NOT NULL ON CONFLICT (task_id, attempt) DO NOTHING";
/// Ends the tasks of the `VALUES` list `v(seq, state, result, error, at)`
/// that precedes it.
pub(super) const FINISH_TASKS: &str = "\
UPDATE tasks SET state = v.state, result = v.result, error = v.error, updated_at = v.at,
    finished_at = v.at, lease_token = NULL, lease_expires_at = NULL, waiting = NULL,
    waiting_kind = NULL, blocked = 0
FROM v
WHERE tasks.seq = v.seq
RETURNING tasks.workflow_id";
/// A stage of workflow `$1` finished at `$2`: the releaser has work.
pub(super) const WORKFLOW_CHANGED: &str =
    "UPDATE workflows SET changes = changes + 1, updated_at = $2 WHERE id = $1";
/// Sends a task back to pending for its next attempt; `$8` is added to
/// `max_attempts` (1 for an attempt its worker handed back, which does not
/// count).
pub(super) const RETRY_TASK: &str = "\
UPDATE tasks SET state = 'pending', attempt = attempt + 1, max_attempts = max_attempts + $8,
    run_after = $2, avoid_worker = $3, avoid_until = $4, error = $5, updated_at = $6,
    lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, waiting = $7,
    waiting_kind = 'retry_backoff'
WHERE seq = $1";
pub(super) const MARK_CANCELLING: &str =
    "UPDATE tasks SET state = 'cancelling', updated_at = $2 WHERE seq = $1";
/// Pending tasks past their retry delay at `$1`, grouped by what placement
/// depends on: the request, and the worker a task's last attempt failed on
/// while it is still passed over.
pub(super) const PENDING_SHAPES: &str = "\
SELECT task_type, cpu_millis, memory_bytes, gpu_count, gpu_model, gpu_memory_bytes, worker_labels,
       CASE WHEN avoid_until > $1 THEN avoid_worker END AS avoiding, tenant,
       COUNT(*) AS n, MIN(updated_at) AS oldest, MAX(avoid_until) AS avoided_until
FROM tasks WHERE state = 'pending' AND blocked = 0 AND run_after <= $1
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9";
/// Every shape's recorded reason: a row per shape of pending tasks that
/// waited at a placement pass, kept until it has no task to place.
pub(super) const SHAPE_WAITS: &str = "\
SELECT tenant, task_type, cpu_millis, memory_bytes, gpu_count, gpu_model, gpu_memory_bytes,
       worker_labels, avoid_worker, waiting
FROM shape_waits";
/// Records the reason `$11` of the shape of request and labels `$1`–`$7`,
/// tenant `$8` and worker passed over `$9` (digest `$10`).
pub(super) const RECORD_SHAPE_WAIT: &str = "\
INSERT INTO shape_waits (shape, tenant, task_type, cpu_millis, memory_bytes, gpu_count, gpu_model,
    gpu_memory_bytes, worker_labels, avoid_worker, waiting)
VALUES ($10, $8, $1, $2, $3, $4, $5, $6, $7, $9, $11)
ON CONFLICT (shape) DO UPDATE SET waiting = excluded.waiting";
/// Forgets the reason of the shape of digest `$1`.
pub(super) const FORGET_SHAPE_WAIT: &str = "DELETE FROM shape_waits WHERE shape = $1";

pub(super) const FAIL_UNPLACEABLE: &str = "\
UPDATE tasks SET state = 'failed', error = $8, updated_at = $10, finished_at = $10,
    waiting = NULL, waiting_kind = NULL
WHERE state = 'pending' AND blocked = 0 AND tenant = $11 AND task_type = $1 AND cpu_millis = $2
  AND memory_bytes = $3 AND gpu_count = $4 AND COALESCE(gpu_model, '') = $5
  AND gpu_memory_bytes = $6 AND worker_labels = $7 AND updated_at <= $9
RETURNING id, attempt, workflow_id";
pub(super) const QUEUE_DEPTH: &str =
    "SELECT task_type, state, COUNT(*) AS n FROM tasks GROUP BY task_type, state";
// Tasks finished before `$1`, but not the stages of a workflow that has not
// finished by then: its later stages still read their results.
pub(super) const GC_EVENTS: &str = "\
DELETE FROM task_events WHERE task_id IN (SELECT t.id FROM tasks t WHERE t.finished_at < $1
    AND NOT EXISTS (SELECT 1 FROM workflows w WHERE w.id = t.workflow_id
                    AND (w.finished_at IS NULL OR w.finished_at >= $1)))";
pub(super) const GC_ATTEMPTS: &str = "\
DELETE FROM task_attempts WHERE task_id IN (SELECT t.id FROM tasks t WHERE t.finished_at < $1
    AND NOT EXISTS (SELECT 1 FROM workflows w WHERE w.id = t.workflow_id
                    AND (w.finished_at IS NULL OR w.finished_at >= $1)))";
pub(super) const GC_TASKS: &str = "\
DELETE FROM tasks WHERE finished_at < $1
    AND NOT EXISTS (SELECT 1 FROM workflows w WHERE w.id = tasks.workflow_id
                    AND (w.finished_at IS NULL OR w.finished_at >= $1))";
// A finished workflow goes once its stages have (run after GC_TASKS).
pub(super) const GC_WORKFLOW_EVENTS: &str = "\
DELETE FROM task_events WHERE task_id IN (SELECT w.id FROM workflows w WHERE w.finished_at < $1
    AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.workflow_id = w.id))";
pub(super) const GC_WORKFLOWS: &str = "\
DELETE FROM workflows WHERE finished_at < $1
    AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.workflow_id = workflows.id)";

pub(super) const EVENTS_AFTER: &str = "\
SELECT seq, task_id, at, body FROM task_events WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";

pub(super) const WORKFLOW_EVENTS_AFTER: &str = "\
SELECT seq, task_id, at, body FROM task_events
WHERE task_id IN (SELECT id FROM tasks WHERE workflow_id = $1 UNION ALL SELECT $1) AND seq > $2
ORDER BY seq LIMIT $3";

pub(super) const INSERT_WORKFLOW: &str = "\
INSERT INTO workflows (id, tenant, name, labels, state, changes, created_at, updated_at)
VALUES ($1, $2, $3, $4, 'running', 1, $5, $5)";
pub(super) const WORKFLOW_BY_ID: &str = "SELECT * FROM workflows WHERE id = $1";
/// Workflow `$1`'s stages, as of `$2`.
pub(super) const STAGES_OF_WORKFLOW: &str = concat!(
    "SELECT ",
    task_columns!("$2"),
    " FROM tasks t WHERE workflow_id = $1 ORDER BY seq"
);
pub(super) const LIST_WORKFLOWS: &str = "\
SELECT * FROM workflows
WHERE tenant = $1 AND ($2 IS NULL OR state = $2) AND seq < $3
ORDER BY seq DESC LIMIT $4";
/// Stage states of tenant `$1`'s workflows with `seq` from `$2` to `$3`.
pub(super) const STAGE_COUNTS: &str = "\
SELECT t.workflow_id, t.state, COUNT(*) AS n
FROM tasks t JOIN workflows w ON w.id = t.workflow_id
WHERE w.tenant = $1 AND w.seq >= $2 AND w.seq <= $3
GROUP BY t.workflow_id, t.state";
/// Workflows with unsettled changes after submission order `$2`.
pub(super) const UNSETTLED_WORKFLOWS: &str = "\
SELECT seq, id, changes FROM workflows WHERE changes <> settled AND seq > $2
ORDER BY seq LIMIT $1";
pub(super) const SETTLE_WORKFLOW: &str =
    "UPDATE workflows SET settled = $2 WHERE id = $1 AND settled < $2";
pub(super) const REQUEST_WORKFLOW_CANCEL: &str = "\
UPDATE workflows SET cancel_requested = 1, changes = changes + 1, updated_at = $2
WHERE id = $1 AND state = 'running' AND cancel_requested = 0";
pub(super) const FINISH_WORKFLOW: &str = "\
UPDATE workflows SET state = $2, updated_at = $3, finished_at = $3
WHERE id = $1 AND state = 'running'";
/// Lets a held-back stage go with its resolved spec, if it is still held.
pub(super) const RELEASE_STAGE: &str = "\
UPDATE tasks SET spec = $2, blocked = 0, waiting = NULL, waiting_kind = NULL, updated_at = $3
WHERE id = $1 AND state = 'pending' AND blocked = 1
RETURNING attempt";
/// Ends a held-back stage without running it (failed or skipped), if it is
/// still held.
pub(super) const END_STAGE: &str = "\
UPDATE tasks SET state = $2, error = $3, updated_at = $4, finished_at = $4, blocked = 0,
    waiting = NULL, waiting_kind = NULL
WHERE id = $1 AND state = 'pending' AND blocked = 1
RETURNING attempt, workflow_id";

pub(super) const EXTEND_LEASES: &str = "\
UPDATE tasks SET lease_expires_at = $1
WHERE state IN ('running', 'cancelling') AND lease_expires_at < $1";
pub(super) const EXTEND_WORKERS: &str =
    "UPDATE workers SET heartbeat_at = $1 WHERE state = 'live' AND heartbeat_at < $1";

#[cfg(test)]
mod tests {
    #[test]
    fn padded_chunks_take_one_statement_per_256_rows() {
        let shapes = |n: usize, parameters: usize| -> Vec<(usize, usize)> {
            let items: Vec<usize> = (0..n).collect();
            super::padded_chunks(&items, parameters)
                .iter()
                .map(|chunk| (chunk.items.len(), chunk.size))
                .collect()
        };
        assert_eq!(shapes(0, 3), []);
        assert_eq!(shapes(1, 3), [(1, 1)]);
        assert_eq!(shapes(40, 8), [(40, 64)]);
        assert_eq!(shapes(64, 8), [(64, 64)]);
        assert_eq!(shapes(300, 3), [(256, 256), (44, 64)]);
        // 2,048 parameters at most: 25 columns take 64 rows a statement.
        assert_eq!(shapes(100, 25), [(64, 64), (36, 64)]);
        let items = [7, 8, 9];
        let chunks = super::padded_chunks(&items, 2);
        let rows: Vec<_> = chunks[0].rows().collect();
        assert_eq!(rows, [Some(&7), Some(&8), Some(&9), None]);
    }
}
