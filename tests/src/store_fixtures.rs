//! What tests that drive the [`Store`](flowmesh_server::store::Store)
//! directly need to act as a worker: the token a registration belongs to,
//! a claim under it, and the served types of a registration.

use std::collections::{BTreeMap, BTreeSet};

use flowmesh_server::store::{Claim, NewWorker, Store, TenantRules};
use flowmesh_types::WorkerCapabilities;
use flowmesh_types::api::{Hardware, PluginRef, ServedTypes, WorkerRegistration};

/// Every tenant alike.
static OPEN: TenantRules = TenantRules::OPEN;

/// The token id test registrations are made with.
pub const TOKEN: &str = "test-token";

/// A claim of up to `max` tasks (considering `scan` rows) by registration
/// `worker_id` of [`TOKEN`], with every tenant allowing shared workers.
pub fn claim_for(worker_id: &str, max: u32, scan: u32) -> Claim<'_> {
    Claim {
        worker_id,
        token_id: TOKEN,
        max,
        scan,
        rules: &OPEN,
    }
}

/// `types` served by a plugin named after each type.
pub fn served(types: &[&str]) -> ServedTypes {
    ServedTypes {
        types: types
            .iter()
            .map(|task_type| {
                (
                    task_type.to_string(),
                    PluginRef {
                        name: task_type.to_string(),
                        version: "1.0.0".into(),
                        digest: format!("sha256:{task_type}"),
                        local: false,
                    },
                )
            })
            .collect(),
        refused: Vec::new(),
    }
}

/// A worker to register straight into the store.
#[derive(Debug, Clone)]
pub struct TestRegistration<'a> {
    /// Its name.
    pub name: &'a str,
    /// The tenant whose tasks it runs; `None` for a shared worker.
    pub pool: Option<&'a str>,
    /// The task types it is served.
    pub types: &'a [&'a str],
    /// Its labels.
    pub labels: &'a [(&'a str, &'a str)],
    /// Its slots.
    pub slots: u32,
    /// Its hardware.
    pub hardware: Hardware,
}

/// Registers `worker` with [`TOKEN`] at time 1,000, served its types by
/// installed plugins; its registration id.
pub async fn register(store: &Store, worker: TestRegistration<'_>) -> String {
    let types = served(worker.types);
    register_served(store, worker, &types).await
}

/// Registers `worker`, which says it runs `worker.types`, as served
/// `served` (what [`plugin_identity::served`] made of the plugins it
/// reported); its registration id.
///
/// [`plugin_identity::served`]: flowmesh_server::plugin_identity::served
pub async fn register_served(
    store: &Store,
    worker: TestRegistration<'_>,
    served: &ServedTypes,
) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    let registration = WorkerRegistration {
        name: worker.name.to_string(),
        capabilities: WorkerCapabilities {
            supported_task_types: worker
                .types
                .iter()
                .map(|t| t.to_string())
                .collect::<BTreeSet<_>>(),
            plugins: Vec::new(),
            capabilities: Vec::new(),
        },
        hardware: worker.hardware,
        labels: worker
            .labels
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect::<BTreeMap<_, _>>(),
        slots: worker.slots,
        read_ahead: 0,
        version: "test".into(),
    };
    store
        .register_worker(&NewWorker {
            id: &id,
            registration: &registration,
            token_id: TOKEN,
            pool_tenant: worker.pool,
            served,
            now: 1_000,
        })
        .await
        .expect("registered");
    id
}
