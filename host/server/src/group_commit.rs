//! Group commit for submissions.
//!
//! Every accepted submission — one document, or a batch of tasks and
//! workflows — is handed to one writer, which stores whatever has queued up
//! since its last write in a single transaction
//! ([`Store::insert_submissions`]), with multi-row inserts. Under load that
//! turns hundreds of small transactions into a few large ones; with one
//! client it adds nothing, since the writer takes what is there without
//! waiting for more. Each tenant's pending limit is counted in that same
//! transaction, so submissions racing each other cannot pass it together.
//! The submitter's answer comes after the commit, so a `201` still means the
//! documents are durable.

use flowmesh_types::TaskDocument;
use flowmesh_types::api::Waiting;
use flowmesh_types::document::Metadata;
use tokio::sync::{mpsc, oneshot};

use crate::store::{
    NewStage, NewSubmission, NewTask, NewWorkflow, StagePlan, Store, StoreError, SubmissionWrite,
};

/// Most submissions in one write.
const BATCH: usize = 256;

/// A task to store.
pub struct TaskRow {
    /// Its id.
    pub id: String,
    /// The checked document.
    pub document: TaskDocument,
}

/// A workflow to store, with its stages as task rows.
pub struct WorkflowRows {
    /// Its id.
    pub id: String,
    /// Its name and labels.
    pub metadata: Metadata,
    /// One per stage, in document order.
    pub stages: Vec<StageRow>,
}

/// A workflow stage as the task row it is stored as.
pub struct StageRow {
    /// The task's id.
    pub id: String,
    /// The stage's name.
    pub name: String,
    /// The task document (named after the workflow and the stage).
    pub document: TaskDocument,
    /// What it waits for.
    pub plan: StagePlan,
    /// Why it is held back, when it is.
    pub blocked: Option<Waiting>,
}

/// What one request stores: all of it, or none of it.
pub struct Submission {
    /// Whose.
    pub tenant: String,
    /// The tenant's pending limit, if it has one.
    pub max_pending: Option<u64>,
    /// When it was accepted.
    pub now: i64,
    /// Its tasks.
    pub tasks: Vec<TaskRow>,
    /// Its workflows.
    pub workflows: Vec<WorkflowRows>,
}

impl Submission {
    fn new_submission(&self) -> NewSubmission<'_> {
        fn task<'a>(
            submission: &'a Submission,
            id: &'a str,
            document: &'a TaskDocument,
        ) -> NewTask<'a> {
            NewTask {
                id,
                tenant: &submission.tenant,
                document,
                now: submission.now,
                stage: None,
            }
        }
        NewSubmission {
            tenant: &self.tenant,
            max_pending: self.max_pending,
            tasks: self
                .tasks
                .iter()
                .map(|row| task(self, &row.id, &row.document))
                .collect(),
            workflows: self
                .workflows
                .iter()
                .map(|workflow| NewWorkflow {
                    id: &workflow.id,
                    tenant: &self.tenant,
                    metadata: &workflow.metadata,
                    now: self.now,
                    stages: workflow
                        .stages
                        .iter()
                        .map(|stage| NewTask {
                            stage: Some(NewStage {
                                workflow_id: &workflow.id,
                                name: &stage.name,
                                plan: &stage.plan,
                                blocked: stage.blocked.clone(),
                            }),
                            ..task(self, &stage.id, &stage.document)
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

struct Queued {
    submission: Submission,
    done: oneshot::Sender<Result<SubmissionWrite, WriteFailure>>,
}

/// Why a grouped write failed, for each submission in it: the store's error
/// as text (one error answers many requests), and whether the disk was full.
#[derive(Clone)]
struct WriteFailure {
    message: String,
    disk_full: bool,
}

impl From<WriteFailure> for StoreError {
    fn from(failure: WriteFailure) -> Self {
        if failure.disk_full {
            StoreError::DiskFull(failure.message)
        } else {
            StoreError::Write(failure.message)
        }
    }
}

/// The queue into the writer.
#[derive(Clone)]
pub struct Submissions {
    sender: mpsc::Sender<Queued>,
}

impl Submissions {
    /// Starts the writer; it stops when every handle is dropped.
    pub fn start(store: Store) -> Self {
        let (sender, receiver) = mpsc::channel(4 * BATCH);
        tokio::spawn(write_loop(store, receiver));
        Self { sender }
    }

    /// Stores a submission; its first events once committed, or how many
    /// tasks its tenant had pending when it would have passed the limit.
    pub async fn submit(&self, submission: Submission) -> Result<SubmissionWrite, StoreError> {
        let (done, answer) = oneshot::channel();
        let stopped = || StoreError::Write("the server is shutting down".into());
        self.sender
            .send(Queued { submission, done })
            .await
            .map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(StoreError::from)
    }
}

async fn write_loop(store: Store, mut receiver: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        let submissions: Vec<NewSubmission<'_>> = batch
            .iter()
            .map(|queued| queued.submission.new_submission())
            .collect();
        let outcome = store.insert_submissions(&submissions).await;
        drop(submissions);
        match outcome {
            Ok(written) => {
                for (queued, written) in batch.drain(..).zip(written) {
                    let _ = queued.done.send(Ok(written));
                }
            }
            Err(error) => {
                let documents: usize = batch
                    .iter()
                    .map(|queued| queued.submission.tasks.len() + queued.submission.workflows.len())
                    .sum();
                tracing::error!(%error, documents, "storing submitted documents failed");
                let failure = WriteFailure {
                    message: error.to_string(),
                    disk_full: error.disk_full(),
                };
                for queued in batch.drain(..) {
                    let _ = queued.done.send(Err(failure.clone()));
                }
            }
        }
    }
}
