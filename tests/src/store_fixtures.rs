//! What tests that drive the [`Store`](flowmesh_server::store::Store)
//! directly need to act as a worker: the token a registration belongs to,
//! a claim under it, and the served types of a registration.

use flowmesh_server::store::{Claim, TenantRules};
use flowmesh_types::api::{PluginRef, ServedTypes};

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
