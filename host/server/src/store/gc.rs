//! Garbage collection: deleting tasks, with their events and attempts, and
//! workflows, some time after they finished.

use super::{Store, StoreError, sql};

impl Store {
    /// Deletes tasks that finished before `cutoff`, with their events and
    /// attempts. Returns how many tasks.
    pub async fn collect_garbage(&self, cutoff: i64) -> Result<u64, StoreError> {
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        // Workflows last: which stages may go depends on their workflow rows.
        let mut deleted = 0;
        for statement in [
            sql::GC_EVENTS,
            sql::GC_ATTEMPTS,
            sql::GC_TASKS,
            sql::GC_WORKFLOW_EVENTS,
            sql::GC_WORKFLOWS,
        ] {
            let rows = sqlx::query(statement)
                .bind(cutoff)
                .execute(&mut tx)
                .await?
                .rows_affected();
            if statement == sql::GC_TASKS {
                deleted = rows;
            }
        }
        tx.commit().await?;
        Ok(deleted)
    }
}
