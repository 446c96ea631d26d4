-- FlowMesh schema, SQLite. Times are milliseconds since the Unix epoch;
-- JSON documents are TEXT.

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,      -- sha256 of the bearer token, hex
    tenant      TEXT NOT NULL,
    role        TEXT NOT NULL,             -- admin | user | worker
    name        TEXT,
    created_at  INTEGER NOT NULL
);

CREATE TABLE plugins (
    name          TEXT PRIMARY KEY,
    version       TEXT NOT NULL,
    digest        TEXT NOT NULL,           -- sha256:<hex> of the component
    manifest      TEXT NOT NULL,           -- JSON Manifest
    imports       TEXT NOT NULL,           -- JSON list of imported interfaces
    component     BLOB NOT NULL,
    installed_at  INTEGER NOT NULL
);

CREATE TABLE workers (
    id                TEXT PRIMARY KEY,    -- one per registration
    name              TEXT NOT NULL,
    state             TEXT NOT NULL,       -- live | gone
    capabilities      TEXT NOT NULL,       -- JSON WorkerCapabilities
    task_types        TEXT NOT NULL,       -- JSON list, what the claim routes by
    hardware          TEXT NOT NULL,       -- JSON Hardware
    labels            TEXT NOT NULL,       -- JSON map
    slots             INTEGER NOT NULL,
    cpu_millis        INTEGER NOT NULL,
    memory_bytes      INTEGER NOT NULL,
    gpu_count         INTEGER NOT NULL,
    gpu_models        TEXT NOT NULL,       -- JSON list of device names
    gpu_memory_bytes  INTEGER NOT NULL,    -- the smallest device's memory
    version           TEXT NOT NULL,
    registered_at     INTEGER NOT NULL,
    heartbeat_at      INTEGER NOT NULL
);
CREATE INDEX workers_by_name ON workers (name, state);
CREATE INDEX workers_live ON workers (state, heartbeat_at);

CREATE TABLE tasks (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,  -- submission order, list cursor
    id                TEXT NOT NULL UNIQUE,
    tenant            TEXT NOT NULL,
    name              TEXT,
    labels            TEXT NOT NULL,       -- JSON map
    task_type         TEXT NOT NULL,
    spec              TEXT NOT NULL,       -- JSON, the plugin's fields
    cpu_millis        INTEGER NOT NULL,
    memory_bytes      INTEGER NOT NULL,
    gpu_count         INTEGER NOT NULL,
    gpu_model         TEXT,
    gpu_memory_bytes  INTEGER NOT NULL,
    timeout_ms        INTEGER,
    max_attempts      INTEGER NOT NULL,
    state             TEXT NOT NULL,
    attempt           INTEGER NOT NULL,    -- current or next attempt, 1-based
    run_after         INTEGER NOT NULL,    -- not claimable before (retry backoff)
    avoid_worker      TEXT,                -- name of the worker of the failed attempt
    avoid_until       INTEGER NOT NULL DEFAULT 0,
    worker_id         TEXT,
    worker_name       TEXT,
    lease_token       TEXT,
    lease_expires_at  INTEGER,
    started_at        INTEGER,
    waiting           TEXT,                -- JSON Waiting, while pending
    waiting_kind      TEXT,
    result            TEXT,                -- JSON ResultEnvelope
    error             TEXT,                -- JSON TaskError
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    finished_at       INTEGER
);
-- The claim walks pending tasks oldest first and stops at its limit.
CREATE INDEX tasks_pending ON tasks (seq) WHERE state = 'pending';
CREATE INDEX tasks_pending_shape ON tasks (task_type) WHERE state = 'pending';
CREATE INDEX tasks_by_worker ON tasks (worker_id) WHERE state IN ('running', 'cancelling');
CREATE INDEX tasks_leases ON tasks (lease_expires_at) WHERE state IN ('running', 'cancelling');
CREATE INDEX tasks_by_tenant ON tasks (tenant, seq);
CREATE INDEX tasks_finished ON tasks (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE task_attempts (
    task_id      TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    worker_name  TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    outcome      TEXT NOT NULL,
    error        TEXT,
    PRIMARY KEY (task_id, attempt)
);

CREATE TABLE task_events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id  TEXT NOT NULL,
    at       INTEGER NOT NULL,
    body     TEXT NOT NULL                 -- JSON EventBody
);
CREATE INDEX task_events_by_task ON task_events (task_id, seq);
