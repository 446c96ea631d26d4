//! Per-tenant limits checked at submit: how many of a tenant's tasks may
//! wait ([`TenantPolicy::max_pending`](crate::config::TenantPolicy)). A
//! document that would take the tenant past its limit is refused whole (a
//! workflow counts every stage), with the limit named; nothing is stored.

use super::{Rejection, RejectionKind};
use crate::state::AppState;
use crate::store::StoreError;

/// Refuses `adding` more pending tasks of `tenant` when they would pass its
/// limit. Only tenants with a limit cost a count.
pub(super) async fn check_pending(
    state: &AppState,
    tenant: &str,
    adding: u64,
) -> Result<Result<(), Rejection>, StoreError> {
    let Some(limit) = state.config.tenants.of(tenant).max_pending else {
        return Ok(Ok(()));
    };
    let pending = state.store.pending_count(tenant).await?;
    if pending.saturating_add(adding) <= limit {
        return Ok(Ok(()));
    }
    Ok(Err(Rejection::new(
        RejectionKind::QuotaExceeded,
        format!(
            "tenant {tenant} has {pending} task(s) waiting and this adds {adding}, over its limit of {limit} (max-pending in the server's tenants file); nothing was stored: wait for some to start, or ask the operator to raise the limit"
        ),
        Vec::new(),
    )))
}
