-- FlowMesh schema, PostgreSQL. Times are milliseconds since the Unix epoch;
-- JSON documents are TEXT.

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,      -- sha256 of the bearer token, hex
    tenant      TEXT NOT NULL,
    role        TEXT NOT NULL,             -- admin | user | worker
    name        TEXT,
    created_at  BIGINT NOT NULL
);

CREATE TABLE plugins (
    name          TEXT PRIMARY KEY,
    version       TEXT NOT NULL,
    digest        TEXT NOT NULL,           -- sha256:<hex> of the component
    manifest      TEXT NOT NULL,           -- JSON Manifest
    imports       TEXT NOT NULL,           -- JSON list of imported interfaces
    component     BYTEA NOT NULL,
    installed_at  BIGINT NOT NULL
);

CREATE TABLE workers (
    id                TEXT PRIMARY KEY,    -- one per registration
    name              TEXT NOT NULL,
    state             TEXT NOT NULL,       -- live | gone
    capabilities      TEXT NOT NULL,       -- JSON WorkerCapabilities
    task_types        TEXT NOT NULL,       -- JSON list, what the claim routes by
    hardware          TEXT NOT NULL,       -- JSON Hardware
    labels            TEXT NOT NULL,       -- JSON map
    slots             BIGINT NOT NULL,
    cpu_millis        BIGINT NOT NULL,
    memory_bytes      BIGINT NOT NULL,
    gpu_count         BIGINT NOT NULL,
    gpu_models        TEXT NOT NULL,       -- JSON list of device names
    gpu_memory_bytes  BIGINT NOT NULL,    -- the smallest device's memory
    version           TEXT NOT NULL,
    registered_at     BIGINT NOT NULL,
    heartbeat_at      BIGINT NOT NULL
);
CREATE INDEX workers_by_name ON workers (name, state);
CREATE INDEX workers_live ON workers (state, heartbeat_at);

CREATE TABLE tasks (
    seq               BIGSERIAL PRIMARY KEY,  -- submission order, list cursor
    id                TEXT NOT NULL UNIQUE,
    tenant            TEXT NOT NULL,
    name              TEXT,
    labels            TEXT NOT NULL,       -- JSON map
    task_type         TEXT NOT NULL,
    spec              TEXT NOT NULL,       -- JSON, the plugin's fields
    cpu_millis        BIGINT NOT NULL,
    memory_bytes      BIGINT NOT NULL,
    gpu_count         BIGINT NOT NULL,
    gpu_model         TEXT,
    gpu_memory_bytes  BIGINT NOT NULL,
    timeout_ms        BIGINT,
    max_attempts      BIGINT NOT NULL,
    state             TEXT NOT NULL,
    attempt           BIGINT NOT NULL,    -- current or next attempt, 1-based
    run_after         BIGINT NOT NULL,    -- not claimable before (retry backoff)
    avoid_worker      TEXT,                -- name of the worker of the failed attempt
    avoid_until       BIGINT NOT NULL DEFAULT 0,
    worker_id         TEXT,
    worker_name       TEXT,
    lease_token       TEXT,
    lease_expires_at  BIGINT,
    started_at        BIGINT,
    waiting           TEXT,                -- JSON Waiting, while pending
    waiting_kind      TEXT,
    result            TEXT,                -- JSON ResultEnvelope
    error             TEXT,                -- JSON TaskError
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    finished_at       BIGINT
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
    attempt      BIGINT NOT NULL,
    worker_name  TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT NOT NULL,
    outcome      TEXT NOT NULL,
    error        TEXT,
    PRIMARY KEY (task_id, attempt)
);

CREATE TABLE task_events (
    seq      BIGSERIAL PRIMARY KEY,
    task_id  TEXT NOT NULL,
    at       BIGINT NOT NULL,
    body     TEXT NOT NULL                 -- JSON EventBody
);
CREATE INDEX task_events_by_task ON task_events (task_id, seq);
