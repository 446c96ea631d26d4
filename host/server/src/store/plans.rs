//! Query plans of the hot path, as the database would run them now: for an
//! operator asking why claims are slow, and for the scale benchmark, which
//! shows that a claim walks indexes and never every pending row.

use std::collections::HashMap;

use sqlx::{AssertSqlSafe, Row};

use super::attempts::bind_claim;
use super::rows::{get_i64, get_str};
use super::{Backend, Claim, Store, StoreError};

impl Store {
    /// The plan of the claim `claim` would run at `now`, one line per step,
    /// nested steps indented. Nothing is claimed: SQLite's `EXPLAIN QUERY
    /// PLAN` and PostgreSQL's `EXPLAIN` (without `ANALYZE`) do not run the
    /// statement.
    pub async fn claim_plan(&self, claim: &Claim<'_>, now: i64) -> Result<Vec<String>, StoreError> {
        let prefix = match self.backend {
            Backend::Sqlite => "EXPLAIN QUERY PLAN",
            Backend::Postgres => "EXPLAIN",
        };
        let statement = format!("{prefix} {}", self.dialect.claim);
        let query = sqlx::query(AssertSqlSafe(statement)).persistent(false);
        let rows = bind_claim(query, claim, now, 0)
            .fetch_all(&self.reader)
            .await?;
        match self.backend {
            Backend::Postgres => rows.iter().map(|row| get_str(row, "QUERY PLAN")).collect(),
            Backend::Sqlite => {
                // Each step names its parent step: indent by depth.
                let mut depth: HashMap<i64, usize> = HashMap::new();
                let mut lines = Vec::with_capacity(rows.len());
                for row in &rows {
                    let id = get_i64(row, "id")?;
                    let parent = get_i64(row, "parent")?;
                    let level = depth.get(&parent).map_or(0, |level| level + 1);
                    depth.insert(id, level);
                    let detail: String = row.try_get("detail")?;
                    lines.push(format!("{}{detail}", "  ".repeat(level)));
                }
                Ok(lines)
            }
        }
    }
}
