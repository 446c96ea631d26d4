//! Fair shares between tenants: which tenant's pending tasks a claim takes
//! first, and each tenant's limit of running tasks.
//!
//! Each tenant with work has a *pass* in `tenant_shares`: how much of the
//! fleet it has been given, advanced by its *stride* (1,000,000 / weight)
//! for every task it starts. A claim tags each tenant's candidates with the
//! tenant's pass plus one stride per candidate before it, and takes the
//! lowest tags first (stride scheduling, as in Waldspurger's lottery and
//! stride papers): two tenants of equal weight are served in turn, one of
//! weight 2 twice as often, whatever their backlogs. The row of tenant `''`
//! is the virtual time, the smallest pass a claim started from; a tenant
//! whose pass lags it (it had no work for a while) starts from it, so a pause
//! earns no credit to crowd the others out later.
//!
//! The claim statements (`sqlite.rs`, `postgres.rs`) read the passes and
//! apply the rules; [`charge`] advances the passes of the tenants a claim
//! served, in the claim's transaction.

use std::collections::BTreeMap;

use sqlx::{Any, AssertSqlSafe};

use super::write_tx::WriteTx;

use super::rows::{get_i64, get_str};
use super::{StoreError, encode_json, sql};

/// The pass one task adds for a tenant of weight 1.
pub const STRIDE: i64 = 1_000_000;

/// The tenants' rules as a claim applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRules {
    /// Whether a tenant's tasks may run on shared workers, by default.
    pub shared_by_default: bool,
    /// The tenants for which the opposite holds.
    pub shared_exceptions: Vec<String>,
    /// The stride of a tenant not in `strides` ([`STRIDE`] for weight 1).
    pub default_stride: i64,
    /// Each tenant's stride other than the default.
    pub strides: BTreeMap<String, i64>,
    /// The most tasks a tenant runs at once across the fleet (0: no limit).
    pub default_max_running: i64,
    /// Each tenant's own limit, where it has one.
    pub max_running: BTreeMap<String, i64>,
}

impl TenantRules {
    /// Every tenant alike: shared workers allowed, weight 1, no limit.
    pub const OPEN: Self = Self {
        shared_by_default: true,
        shared_exceptions: Vec::new(),
        default_stride: STRIDE,
        strides: BTreeMap::new(),
        default_max_running: 0,
        max_running: BTreeMap::new(),
    };

    /// `tenant`'s stride.
    pub fn stride(&self, tenant: &str) -> i64 {
        self.strides
            .get(tenant)
            .copied()
            .unwrap_or(self.default_stride)
    }

    /// `tenant`'s limit of running tasks (0: none).
    pub fn running_limit(&self, tenant: &str) -> i64 {
        self.max_running
            .get(tenant)
            .copied()
            .unwrap_or(self.default_max_running)
    }

    /// The claim's parameters `$7` to `$12`, in order: shared exceptions,
    /// shared by default, strides, default stride, running limits, default
    /// running limit.
    pub(super) fn bind<'q>(
        &self,
        query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
        query
            .bind(encode_json(&self.shared_exceptions))
            .bind(i64::from(self.shared_by_default))
            .bind(encode_json(&self.strides))
            .bind(self.default_stride)
            .bind(encode_json(&self.max_running))
            .bind(self.default_max_running)
    }
}

impl super::Store {
    /// How many tasks each tenant runs now, across the fleet.
    pub async fn running_by_tenant(
        &self,
    ) -> Result<std::collections::HashMap<String, u64>, StoreError> {
        let rows = sqlx::query(sql::RUNNING_BY_TENANT)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| Ok((get_str(row, "tenant")?, get_i64(row, "n")?.max(0) as u64)))
            .collect()
    }
}

/// Advances the passes of the tenants a claim served: `started` holds how
/// many tasks each one started.
pub(super) async fn charge(
    tx: &mut WriteTx<'_>,
    started: &BTreeMap<String, i64>,
    rules: &TenantRules,
) -> Result<(), StoreError> {
    if started.is_empty() {
        return Ok(());
    }
    // Only the tenants served and the virtual time are read and written:
    // a claim costs the same however many tenants have ever had work.
    let served: Vec<(&String, i64)> = started
        .iter()
        .map(|(tenant, count)| (tenant, count.saturating_mul(rules.stride(tenant))))
        .collect();
    let marks = sql::Marks::of(tx);
    for chunk in sql::padded_chunks(&served, 2) {
        let statement = format!(
            "WITH served(tenant, charge) AS (VALUES {}),{}",
            chunk.values(marks),
            sql::CHARGE_TENANTS
        );
        let mut query = sqlx::query(AssertSqlSafe(statement));
        for row in chunk.rows() {
            query = query
                .bind(row.map(|(tenant, _)| tenant.as_str()))
                .bind(row.map(|(_, charge)| *charge));
        }
        query.execute(&mut *tx).await?;
    }
    Ok(())
}
