//! Storing what admission accepted: the tasks and workflows of many
//! submissions in one transaction, each tenant's pending limit counted in
//! that same transaction, so that concurrent submissions can never take a
//! tenant past it together.

use std::collections::HashMap;

use flowmesh_types::api::{EventBody, WorkflowState};

use super::events::{NewEvents, StoredEvent};
use super::tasks::{NewTask, insert_task_rows};
use super::workflows::NewWorkflow;
use super::{Store, StoreError, encode_json, sql};

/// The documents of one submission: stored whole, or not at all.
pub struct NewSubmission<'a> {
    /// Whose.
    pub tenant: &'a str,
    /// The most pending tasks the tenant may have, if it has a limit.
    pub max_pending: Option<u64>,
    /// Its tasks.
    pub tasks: Vec<NewTask<'a>>,
    /// Its workflows, with their stages' tasks.
    pub workflows: Vec<NewWorkflow<'a>>,
}

impl NewSubmission<'_> {
    /// How many pending tasks storing it adds: its tasks and every stage.
    pub fn adds(&self) -> u64 {
        let stages: usize = self
            .workflows
            .iter()
            .map(|workflow| workflow.stages.len())
            .sum();
        (self.tasks.len() + stages) as u64
    }
}

/// What became of one [`NewSubmission`].
#[derive(Debug)]
pub enum SubmissionWrite {
    /// Stored: its first events, tasks' in order, then each workflow's own
    /// event followed by its stages'.
    Stored(Vec<StoredEvent>),
    /// Not stored: the tenant already had `pending` tasks waiting, and this
    /// would have taken it past its limit.
    OverLimit {
        /// Pending tasks of the tenant before it.
        pending: u64,
    },
}

impl Store {
    /// Stores a new pending task and its first event.
    pub async fn insert_task(&self, task: NewTask<'_>) -> Result<Vec<StoredEvent>, StoreError> {
        self.insert_one(NewSubmission {
            tenant: task.tenant,
            max_pending: None,
            tasks: vec![task],
            workflows: Vec::new(),
        })
        .await
    }

    /// Stores a workflow and all its stages' tasks in one transaction.
    pub async fn insert_workflow(
        &self,
        workflow: NewWorkflow<'_>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.insert_one(NewSubmission {
            tenant: workflow.tenant,
            max_pending: None,
            tasks: Vec::new(),
            workflows: vec![workflow],
        })
        .await
    }

    /// Stores one submission that has no pending limit.
    async fn insert_one(
        &self,
        submission: NewSubmission<'_>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        match self.insert_submissions(&[submission]).await?.pop() {
            Some(SubmissionWrite::Stored(events)) => Ok(events),
            _ => Err(StoreError::Write(
                "a submission without a limit was refused".into(),
            )),
        }
    }

    /// Stores `submissions` in one transaction. A submission whose tenant
    /// has a pending limit is refused whole (and nothing of it written)
    /// when the tenant's pending tasks — those stored before and those of
    /// the submissions before it in `submissions` — and its own would pass
    /// the limit.
    pub async fn insert_submissions(
        &self,
        submissions: &[NewSubmission<'_>],
    ) -> Result<Vec<SubmissionWrite>, StoreError> {
        let mut writing = self.write().await?;
        let mut tx = writing.begin().await?;
        let mut pending: HashMap<&str, u64> = HashMap::new();
        // Per submission: `Some(pending)` when it would pass its limit.
        let mut over_limit: Vec<Option<u64>> = Vec::with_capacity(submissions.len());
        for submission in submissions {
            let Some(limit) = submission.max_pending else {
                over_limit.push(None);
                continue;
            };
            let count = match pending.get(submission.tenant) {
                Some(count) => *count,
                None => {
                    sqlx::query_scalar::<_, i64>(sql::PENDING_OF_TENANT)
                        .bind(submission.tenant)
                        .fetch_one(&mut tx)
                        .await? as u64
                }
            };
            let adds = submission.adds();
            if count.saturating_add(adds) > limit {
                pending.insert(submission.tenant, count);
                over_limit.push(Some(count));
            } else {
                pending.insert(submission.tenant, count + adds);
                over_limit.push(None);
            }
        }
        // Every accepted submission's tasks in one multi-row insert, then
        // the workflows; each event is noted with the submission it is of.
        let mut events = NewEvents::default();
        let mut owners: Vec<usize> = Vec::new();
        let tasks: Vec<&NewTask<'_>> = submissions
            .iter()
            .zip(&over_limit)
            .filter(|(_, over)| over.is_none())
            .flat_map(|(submission, _)| &submission.tasks)
            .collect();
        insert_task_rows(&mut tx, &tasks, &mut events).await?;
        for (index, (submission, over)) in submissions.iter().zip(&over_limit).enumerate() {
            if over.is_none() {
                owners.extend(std::iter::repeat_n(index, submission.tasks.len()));
            }
        }
        for (index, (submission, over)) in submissions.iter().zip(&over_limit).enumerate() {
            if over.is_some() {
                continue;
            }
            for workflow in &submission.workflows {
                sqlx::query(sql::INSERT_WORKFLOW)
                    .bind(workflow.id)
                    .bind(workflow.tenant)
                    .bind(workflow.metadata.name.clone())
                    .bind(encode_json(&workflow.metadata.labels))
                    .bind(workflow.now)
                    .execute(&mut tx)
                    .await?;
                events.push(
                    workflow.id,
                    EventBody::Workflow {
                        state: WorkflowState::Running,
                        message: Some(format!("submitted with {} stage(s)", workflow.stages.len())),
                    },
                );
                let stages: Vec<&NewTask<'_>> = workflow.stages.iter().collect();
                insert_task_rows(&mut tx, &stages, &mut events).await?;
                owners.extend(std::iter::repeat_n(index, 1 + stages.len()));
            }
        }
        let now = submissions
            .iter()
            .flat_map(|submission| {
                let tasks = submission.tasks.iter().map(|task| task.now);
                tasks.chain(submission.workflows.iter().map(|workflow| workflow.now))
            })
            .max()
            .unwrap_or_default();
        let stored = events.write(&mut tx, now).await?;
        tx.commit().await?;
        let mut written: Vec<SubmissionWrite> = over_limit
            .into_iter()
            .map(|over| match over {
                Some(pending) => SubmissionWrite::OverLimit { pending },
                None => SubmissionWrite::Stored(Vec::new()),
            })
            .collect();
        for (event, owner) in stored.into_iter().zip(owners) {
            if let SubmissionWrite::Stored(events) = &mut written[owner] {
                events.push(event);
            }
        }
        Ok(written)
    }
}
