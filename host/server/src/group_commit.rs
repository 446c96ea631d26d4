//! Group commit for submissions.
//!
//! Every accepted task is handed to one writer, which stores whatever has
//! queued up since its last write in a single transaction with multi-row
//! inserts. Under load that turns hundreds of small transactions into a few
//! large ones; with one client it adds nothing, since the writer takes what
//! is there without waiting for more. The submitter's answer comes after the
//! commit, so a `201` still means the task is durable.

use flowmesh_types::TaskDocument;
use tokio::sync::{mpsc, oneshot};

use crate::store::{NewTask, Store, StoreError, StoredEvent};

/// Most tasks in one write.
const BATCH: usize = 512;

struct Submission {
    id: String,
    tenant: String,
    document: TaskDocument,
    now: i64,
    done: oneshot::Sender<Result<StoredEvent, String>>,
}

/// The queue into the writer.
#[derive(Clone)]
pub struct Submissions {
    sender: mpsc::Sender<Submission>,
}

impl Submissions {
    /// Starts the writer; it stops when every handle is dropped.
    pub fn start(store: Store) -> Self {
        let (sender, receiver) = mpsc::channel(4 * BATCH);
        tokio::spawn(write_loop(store, receiver));
        Self { sender }
    }

    /// Stores a task; returns its first event once committed.
    pub async fn submit(
        &self,
        id: String,
        tenant: String,
        document: TaskDocument,
        now: i64,
    ) -> Result<StoredEvent, StoreError> {
        let (done, answer) = oneshot::channel();
        let submission = Submission {
            id,
            tenant,
            document,
            now,
            done,
        };
        let stopped = || StoreError::Write("the server is shutting down".into());
        self.sender.send(submission).await.map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(StoreError::Write)
    }
}

async fn write_loop(store: Store, mut receiver: mpsc::Receiver<Submission>) {
    let mut batch = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        let tasks: Vec<NewTask<'_>> = batch
            .iter()
            .map(|submission| NewTask {
                id: &submission.id,
                tenant: &submission.tenant,
                document: &submission.document,
                now: submission.now,
                stage: None,
            })
            .collect();
        let outcome = store.insert_tasks(&tasks).await;
        drop(tasks);
        match outcome {
            Ok(events) => {
                for (submission, event) in batch.drain(..).zip(events) {
                    let _ = submission.done.send(Ok(event));
                }
            }
            Err(error) => {
                tracing::error!(%error, tasks = batch.len(), "storing submitted tasks failed");
                let message = error.to_string();
                for submission in batch.drain(..) {
                    let _ = submission.done.send(Err(message.clone()));
                }
            }
        }
    }
}
