//! Worker registrations and their heartbeats.
//!
//! Each registration gets its own id. A worker that restarts registers again
//! under the same name; the earlier registration is retired and the tasks it
//! held are released at once rather than after their leases expire.

use std::collections::{BTreeMap, HashMap};

use super::write_tx::WriteTx;
use flowmesh_types::WorkerCapabilities;
use flowmesh_types::api::{
    Hardware, Heartbeat, ServedTypes, TaskState, WorkerRegistration, WorkerState,
};
use sqlx::any::AnyRow;

use super::rows::{get_i64, get_opt_str, get_str};
use super::{Store, StoreError, decode_json, encode_json, sql};

/// A registration to store.
pub struct NewWorker<'a> {
    /// Its id.
    pub id: &'a str,
    /// What the worker sent; its capabilities' task types are those it is
    /// served.
    pub registration: &'a WorkerRegistration,
    /// The token that registers it, which alone may act for it.
    pub token_id: &'a str,
    /// The tenant whose tasks it runs; `None` for a shared worker.
    pub pool_tenant: Option<&'a str>,
    /// The task types routed to it, and the plugin of each.
    pub served: &'a ServedTypes,
    /// When.
    pub now: i64,
}

/// A stored registration.
#[derive(Debug, Clone)]
pub struct WorkerRecord {
    /// Registration id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Live or gone.
    pub state: WorkerState,
    /// What it runs.
    pub capabilities: WorkerCapabilities,
    /// What it has.
    pub hardware: Hardware,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Slots.
    pub slots: u32,
    /// Tasks it may hold beyond its slots (claimed ahead).
    pub read_ahead: u32,
    /// Version.
    pub version: String,
    /// Registered.
    pub registered_at: i64,
    /// Last heartbeat.
    pub heartbeat_at: i64,
    /// The token that registered it (`None` before tokens were recorded).
    pub token_id: Option<String>,
    /// The tenant whose tasks it runs; `None` for a shared worker.
    pub pool_tenant: Option<String>,
    /// The task types routed to it, and the plugin of each.
    pub served: ServedTypes,
}

/// What one worker is running now, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tasks.
    pub tasks: u32,
    /// CPU in thousandths.
    pub cpu_millis: i64,
    /// Memory.
    pub memory_bytes: i64,
    /// GPUs.
    pub gpus: i64,
}

/// What a heartbeat found.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatOutcome {
    /// Tasks to cancel.
    pub cancel: Vec<String>,
    /// Leases the worker holds that are not its any more.
    pub lost: Vec<String>,
}

impl WorkerRecord {
    /// Whether tasks of `task_type` are routed to this worker: it runs the
    /// installed plugin of that type (or, where allowed, a plugin of its own
    /// for a type nobody installed). What it says it supports does not count.
    pub fn serves(&self, task_type: &str) -> bool {
        self.served.types.contains_key(task_type)
    }

    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: get_str(row, "id")?,
            name: get_str(row, "name")?,
            state: {
                let state = get_str(row, "state")?;
                WorkerState::parse(&state).ok_or_else(|| StoreError::Corrupt {
                    what: "worker state",
                    error: format!("unknown state {state:?}"),
                })?
            },
            capabilities: decode_json("capabilities", &get_str(row, "capabilities")?)?,
            hardware: decode_json("hardware", &get_str(row, "hardware")?)?,
            labels: decode_json("labels", &get_str(row, "labels")?)?,
            slots: get_i64(row, "slots")? as u32,
            read_ahead: get_i64(row, "read_ahead")? as u32,
            version: get_str(row, "version")?,
            registered_at: get_i64(row, "registered_at")?,
            heartbeat_at: get_i64(row, "heartbeat_at")?,
            token_id: get_opt_str(row, "token_id")?,
            pool_tenant: get_opt_str(row, "pool_tenant")?,
            served: decode_json("served", &get_str(row, "served")?)?,
        })
    }
}

/// A worker's hardware as its columns store it: the whole document, and
/// what claims compare without parsing it.
struct HardwareColumns {
    json: String,
    cpu_millis: i64,
    memory_bytes: i64,
    gpu_count: i64,
}

impl HardwareColumns {
    fn of(hardware: &Hardware) -> Self {
        Self {
            json: encode_json(hardware),
            cpu_millis: hardware.cpu_millis(),
            memory_bytes: hardware.memory_bytes as i64,
            gpu_count: hardware.gpus.len() as i64,
        }
    }
}

impl Store {
    /// Stores a registration and retires earlier live registrations of the
    /// same name and token, returning their ids. A live registration of
    /// that name made with another token is never retired: the new one is
    /// refused with [`StoreError::NameTaken`].
    pub async fn register_worker(&self, worker: &NewWorker<'_>) -> Result<Vec<String>, StoreError> {
        let registration = worker.registration;
        let hardware = HardwareColumns::of(&registration.hardware);
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        let taken = sqlx::query(sql::LIVE_WORKER_NAMED_BY_OTHERS)
            .bind(&registration.name)
            .bind(worker.token_id)
            .fetch_optional(&mut tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::NameTaken(registration.name.clone()));
        }
        sqlx::query(sql::INSERT_WORKER)
            .bind(worker.id)
            .bind(&registration.name)
            .bind(encode_json(&registration.capabilities))
            .bind(routed_types(worker.served))
            .bind(hardware.json)
            .bind(encode_json(&registration.labels))
            .bind(i64::from(registration.slots))
            .bind(hardware.cpu_millis)
            .bind(hardware.memory_bytes)
            .bind(hardware.gpu_count)
            .bind(&registration.version)
            .bind(worker.now)
            .bind(worker.token_id)
            .bind(worker.pool_tenant)
            .bind(encode_json(worker.served))
            .bind(i64::from(registration.read_ahead))
            .execute(&mut tx)
            .await?;
        let retired: Vec<String> = sqlx::query_scalar(sql::RETIRE_WORKERS_NAMED)
            .bind(&registration.name)
            .bind(worker.id)
            .bind(worker.token_id)
            .fetch_all(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(retired)
    }

    /// A heartbeat ([`super::RoundTrip::Heartbeat`]) inside `tx`.
    pub(super) async fn heartbeat_in(
        &self,
        tx: &mut WriteTx<'_>,
        beat: &Heartbeat,
        token_id: &str,
        served: Option<&ServedTypes>,
        now: i64,
        lease_ttl_ms: i64,
    ) -> Result<Option<HeartbeatOutcome>, StoreError> {
        let (worker_id, leases) = (beat.worker_id.as_str(), &beat.leases);
        let touched = sqlx::query(sql::TOUCH_WORKER)
            .bind(worker_id)
            .bind(now)
            .bind(token_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if touched == 0 {
            return Ok(None);
        }
        if let (Some(capabilities), Some(served)) = (&beat.capabilities, served) {
            sqlx::query(sql::UPDATE_WORKER_CAPABILITIES)
                .bind(worker_id)
                .bind(encode_json(capabilities))
                .bind(routed_types(served))
                .bind(encode_json(served))
                .execute(&mut *tx)
                .await?;
        }
        if let Some(labels) = &beat.labels {
            sqlx::query(sql::UPDATE_WORKER_LABELS)
                .bind(worker_id)
                .bind(encode_json(labels))
                .execute(&mut *tx)
                .await?;
        }
        if let Some(hardware) = &beat.hardware {
            let hardware = HardwareColumns::of(hardware);
            sqlx::query(sql::UPDATE_WORKER_HARDWARE)
                .bind(worker_id)
                .bind(hardware.json)
                .bind(hardware.cpu_millis)
                .bind(hardware.memory_bytes)
                .bind(hardware.gpu_count)
                .execute(&mut *tx)
                .await?;
        }
        let tokens: Vec<&str> = leases
            .iter()
            .map(|lease| lease.lease_token.as_str())
            .collect();
        // The renewed leases come back; a listed one that does not is lost.
        let held = sqlx::query(self.dialect.renew_leases)
            .bind(worker_id)
            .bind(encode_json(&tokens))
            .bind(now + lease_ttl_ms)
            .fetch_all(&mut *tx)
            .await?;
        let mut current: HashMap<String, (String, String)> = HashMap::new();
        for row in &held {
            current.insert(
                get_str(row, "id")?,
                (get_str(row, "state")?, get_str(row, "lease_token")?),
            );
        }
        let mut outcome = HeartbeatOutcome::default();
        for lease in leases {
            match current.get(&lease.task_id) {
                Some((state, token)) if *token == lease.lease_token => {
                    if state == TaskState::Cancelling.as_str() {
                        outcome.cancel.push(lease.task_id.clone());
                    }
                }
                _ => outcome.lost.push(lease.task_id.clone()),
            }
        }
        Ok(Some(outcome))
    }

    /// Whether registration `worker_id` was made with token `token_id`.
    pub async fn worker_of_token(
        &self,
        worker_id: &str,
        token_id: &str,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(sql::WORKER_OF_TOKEN)
            .bind(worker_id)
            .bind(token_id)
            .fetch_optional(&self.reader)
            .await?
            .is_some())
    }

    /// Ends live registration `worker_id` of token `token_id` (a worker
    /// stopping cleanly); whether there was one. Its tasks are released by
    /// the caller ([`Store::release_worker_tasks`]).
    pub async fn deregister_worker(
        &self,
        worker_id: &str,
        token_id: &str,
    ) -> Result<bool, StoreError> {
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        let ended = sqlx::query(sql::DEREGISTER_WORKER)
            .bind(worker_id)
            .bind(token_id)
            .fetch_optional(&mut tx)
            .await?
            .is_some();
        tx.commit().await?;
        Ok(ended)
    }

    /// Stores what live workers are now served under the installed plugins
    /// as they are: `served` maps each one's capabilities to its types, and
    /// only the registrations whose types changed are written, each only if
    /// its capabilities are still those read (a heartbeat in between routed
    /// it itself). Run whenever the plugins change and on every plugin sync
    /// pass, so a registration routed under an index a moment old is put
    /// right within a heartbeat interval. How many were written.
    pub async fn reroute_workers(
        &self,
        served: impl Fn(&WorkerCapabilities) -> ServedTypes,
    ) -> Result<usize, StoreError> {
        let workers = self.live_workers().await?;
        let changed: Vec<(WorkerRecord, ServedTypes)> = workers
            .into_iter()
            .filter_map(|worker| {
                let now = served(&worker.capabilities);
                (now != worker.served).then_some((worker, now))
            })
            .collect();
        if changed.is_empty() {
            return Ok(0);
        }
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        let mut written = 0;
        for (worker, served) in &changed {
            let mut capabilities = worker.capabilities.clone();
            capabilities.supported_task_types = served.types.keys().cloned().collect();
            // Only if no heartbeat stored newer capabilities meanwhile: its
            // own routing stands, and the next pass looks again.
            written += sqlx::query(sql::REROUTE_WORKER)
                .bind(&worker.id)
                .bind(encode_json(&capabilities))
                .bind(routed_types(served))
                .bind(encode_json(served))
                .bind(encode_json(&worker.capabilities))
                .execute(&mut tx)
                .await?
                .rows_affected() as usize;
        }
        tx.commit().await?;
        Ok(written)
    }

    /// Retires registrations silent since before `cutoff`; returns their ids.
    pub async fn expire_workers(&self, cutoff: i64) -> Result<Vec<String>, StoreError> {
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        let expired = sqlx::query_scalar(sql::EXPIRE_WORKERS)
            .bind(cutoff)
            .fetch_all(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(expired)
    }

    /// All registrations (live first within a name: newest first).
    pub async fn workers(&self) -> Result<Vec<WorkerRecord>, StoreError> {
        let rows = sqlx::query(sql::LIST_WORKERS)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(WorkerRecord::from_row).collect()
    }

    /// Live registrations.
    pub async fn live_workers(&self) -> Result<Vec<WorkerRecord>, StoreError> {
        let rows = sqlx::query(sql::LIVE_WORKERS)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(WorkerRecord::from_row).collect()
    }

    /// One registration.
    pub async fn worker(&self, id: &str) -> Result<Option<WorkerRecord>, StoreError> {
        let row = sqlx::query(sql::WORKER_BY_ID)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(WorkerRecord::from_row).transpose()
    }

    /// The newest registration named `name`.
    pub async fn worker_named(&self, name: &str) -> Result<Option<WorkerRecord>, StoreError> {
        let row = sqlx::query(sql::NEWEST_WORKER_NAMED)
            .bind(name)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(WorkerRecord::from_row).transpose()
    }

    /// What each worker is running, by registration id.
    pub async fn usage(&self) -> Result<HashMap<String, Usage>, StoreError> {
        let rows = sqlx::query(sql::RUNNING_BY_WORKER)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    get_str(row, "worker_id")?,
                    Usage {
                        tasks: get_i64(row, "n")? as u32,
                        cpu_millis: get_i64(row, "cpu")?,
                        memory_bytes: get_i64(row, "mem")?,
                        gpus: get_i64(row, "gpu")?,
                    },
                ))
            })
            .collect()
    }

    /// After the server starts: gives live workers and running leases one
    /// more TTL, so that the time the server was down does not count against
    /// workers that could not reach it.
    pub async fn grace_after_restart(&self, now: i64, lease_ttl_ms: i64) -> Result<(), StoreError> {
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        sqlx::query(sql::EXTEND_LEASES)
            .bind(now + lease_ttl_ms)
            .execute(&mut tx)
            .await?;
        sqlx::query(sql::EXTEND_WORKERS)
            .bind(now)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The task types a claim routes to a worker: those it is `served`, never
/// the ones it says it supports.
fn routed_types(served: &ServedTypes) -> String {
    encode_json(&served.types.keys().collect::<Vec<_>>())
}
