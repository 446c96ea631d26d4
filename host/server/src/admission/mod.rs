//! Admission: the one way a document enters the queue.
//!
//! Every submission, a single task or a workflow, goes through the same
//! steps, in order, and stops at the first that refuses it:
//!
//! 1. **parse** the document (YAML or JSON): the envelope, and for a
//!    workflow its graph, names, references and placeholders;
//! 2. **check** each *unit* against its plugin: a task is one unit (its
//!    spec), a workflow has one per stage, with the fields that still hold
//!    placeholders left for the check at release time; the problems of all
//!    units are reported at once, each at its path in the document;
//! 3. **fail fast** (when asked): refuse a unit whose task type no live
//!    worker advertises;
//! 4. on a **dry run**, answer what was checked and store nothing;
//! 5. otherwise mint ids, build the rows, **write** them through the
//!    group-commit writer (`write`: every document of the request in one
//!    transaction, within the tenant's pending limit), then publish the
//!    first events, count the submission and wake the claims and the
//!    releaser.
//!
//! A batch (many documents in one request, `batch`) takes the same steps
//! for each document on its own, checking several at once within the
//! tenant's share of the validation pool, and writes the accepted ones
//! together.
//!
//! A refusal is a [`Rejection`]: a [`RejectionKind`] (which the API turns
//! into a status and an error code), a message, and field details. The
//! releaser checks a stage's resolved spec through [`check_resolved`], so a
//! spec is judged by the same rules, and its refusal classified the same
//! way, at submit and at release.

use flowmesh_types::document::TaskDocument;
use flowmesh_types::workflow::{Stage, WorkflowDocument, relocate_errors};
use flowmesh_types::{Document, FieldError};
use serde_json::{Map, Value};

mod batch;
mod stage_rows;
mod write;

pub use batch::{BatchOptions, BatchOutcome, DocumentOutcome, admit_batch};
pub use write::StoredId;

use crate::state::AppState;
use crate::store::{StoreError, WorkerRecord};
use crate::validation::SpecRejection;

/// What kind of refusal a [`Rejection`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// The document is not a well-formed task or workflow.
    InvalidDocument,
    /// No installed plugin provides a task type it names.
    UnknownTaskType,
    /// A spec does not satisfy its plugin's schema or `validate()`.
    InvalidSpec,
    /// The plugin could not check a spec (it trapped or timed out).
    CheckFailed,
    /// Fail-fast: no live worker advertises a task type it names.
    NoEligibleWorker,
    /// Storing it would take the tenant past one of its limits.
    QuotaExceeded,
    /// Some documents of a batch were refused, so none was stored.
    InvalidBatch,
}

impl RejectionKind {
    /// The error code clients see.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidDocument => "invalid_document",
            Self::UnknownTaskType => "unknown_task_type",
            Self::InvalidSpec => "invalid_spec",
            Self::CheckFailed => "validation_failed",
            Self::NoEligibleWorker => "no_eligible_worker",
            Self::QuotaExceeded => "quota_exceeded",
            Self::InvalidBatch => "invalid_batch",
        }
    }

    /// Whether the same document could pass later without changing: a
    /// plugin installed meanwhile (through another server), a check that
    /// timed out under load, a worker that connects.
    pub fn may_pass_later(self) -> bool {
        matches!(
            self,
            Self::UnknownTaskType
                | Self::CheckFailed
                | Self::NoEligibleWorker
                | Self::QuotaExceeded
        )
    }
}

/// Why a document, or a resolved stage, was not admitted.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// What kind of refusal.
    pub kind: RejectionKind,
    /// One sentence for people.
    pub message: String,
    /// Each problem at its path in the document.
    pub details: Vec<FieldError>,
}

impl Rejection {
    fn new(kind: RejectionKind, message: String, details: Vec<FieldError>) -> Self {
        Self {
            kind,
            message,
            details,
        }
    }
}

/// Why a submission did not go through.
#[derive(Debug)]
pub enum AdmitError {
    /// The document was refused; nothing was stored.
    Rejected(Rejection),
    /// The store failed.
    Store(StoreError),
}

impl From<Rejection> for AdmitError {
    fn from(rejection: Rejection) -> Self {
        Self::Rejected(rejection)
    }
}

impl From<StoreError> for AdmitError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// How to admit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Refuse a document some of whose task types no live worker advertises.
    pub fail_fast: bool,
    /// Check everything, store nothing.
    pub dry_run: bool,
}

/// A document that passed every check.
pub enum Checked {
    /// A task.
    Task(TaskDocument),
    /// A workflow.
    Workflow(WorkflowDocument),
}

/// What admission did with a document.
pub enum Admitted {
    /// A task was stored.
    Task {
        /// Its id.
        id: String,
        /// The document as stored.
        document: TaskDocument,
        /// When it was stored (ms since the epoch).
        at: i64,
    },
    /// A workflow and its stages were stored.
    Workflow {
        /// The workflow's id.
        id: String,
        /// Its stages' task ids, in document order.
        stage_ids: Vec<String>,
    },
    /// A dry run: everything passed and nothing was stored.
    DryRun(Checked),
}

/// Parses, checks and stores one document for `tenant`.
pub async fn admit(
    state: &AppState,
    tenant: &str,
    body: &[u8],
    options: Options,
) -> Result<Admitted, AdmitError> {
    let text = std::str::from_utf8(body).map_err(|_| not_text())?;
    let workers = fail_fast_workers(state, tenant, options.fail_fast).await?;
    let local = LocalTypes::default();
    let document = parse_document(text)?;
    let checked = check(state, tenant, document, workers.as_deref(), &local).await?;
    if options.dry_run {
        return Ok(Admitted::DryRun(checked));
    }
    let document = match &checked {
        Checked::Task(document) => Some(document.clone()),
        Checked::Workflow(_) => None,
    };
    let (stored, at) = write::write(state, tenant, vec![checked]).await?;
    Ok(match (stored.into_iter().next(), document) {
        (Some(StoredId::Task(id)), Some(document)) => Admitted::Task { id, document, at },
        (Some(StoredId::Workflow { id, stage_ids }), _) => Admitted::Workflow { id, stage_ids },
        _ => {
            return Err(AdmitError::Store(StoreError::Write(
                "the document was not stored".into(),
            )));
        }
    })
}

/// A body that is not UTF-8.
fn not_text() -> Rejection {
    Rejection::new(
        RejectionKind::InvalidDocument,
        "the document is not UTF-8 text; send YAML or JSON".into(),
        Vec::new(),
    )
}

/// With `fail_fast`, the live workers that may run `tenant`'s tasks, read
/// once for every document of a request.
async fn fail_fast_workers(
    state: &AppState,
    tenant: &str,
    fail_fast: bool,
) -> Result<Option<Vec<WorkerRecord>>, StoreError> {
    Ok(if fail_fast {
        Some(pool_workers(state, tenant).await?)
    } else {
        None
    })
}

/// Step 1: the document, or why it is malformed.
pub fn parse_document(text: &str) -> Result<Document, Rejection> {
    flowmesh_types::parse(text).map_err(|errors| {
        Rejection::new(
            RejectionKind::InvalidDocument,
            format!("the document has {} problem(s); see details", errors.len()),
            errors,
        )
    })
}

/// Steps 2 and 3: every unit against its plugin, within `tenant`'s share of
/// the validation pool, then (with fail-fast) against `fail_fast`, the live
/// workers that may run that tenant's tasks.
pub async fn check(
    state: &AppState,
    tenant: &str,
    document: Document,
    fail_fast: Option<&[WorkerRecord]>,
    local: &LocalTypes,
) -> Result<Checked, AdmitError> {
    let units = units(&document);
    let mut problems = Vec::new();
    for unit in &units {
        if let Err(rejection) = state
            .validator
            .check_deferring(tenant, unit.task_type, unit.fields, &unit.deferred)
            .await
        {
            problems.push((unit, rejection));
        }
    }
    if problems
        .iter()
        .any(|(_, problem)| matches!(problem, SpecRejection::UnknownTaskType(_)))
    {
        let local = local.get(state, tenant).await?;
        problems.retain(|(_, problem)| {
            !matches!(problem, SpecRejection::UnknownTaskType(task_type) if local.contains(task_type))
        });
    }
    if !problems.is_empty() {
        let subject = Subject::of(&document);
        return Err(classify(state, subject, problems).into());
    }
    if let Some(workers) = fail_fast {
        refuse_unserved(state, &document, &units, workers)?;
    }
    Ok(match document {
        Document::Task(task) => Checked::Task(task),
        Document::Workflow(workflow) => Checked::Workflow(workflow),
    })
}

/// The live workers that may run `tenant`'s tasks: its own, and shared
/// ones where it allows them.
async fn pool_workers(state: &AppState, tenant: &str) -> Result<Vec<WorkerRecord>, StoreError> {
    let shared_workers = state.config.tenants.of(tenant).shared_workers;
    Ok(state
        .store
        .live_workers()
        .await?
        .into_iter()
        .filter(|worker| match &worker.pool_tenant {
            Some(pool) => pool == tenant,
            None => shared_workers,
        })
        .collect())
}

/// The task types [`locally_served`] to one tenant, read at most once per
/// request: a batch of many documents of such types reads the live workers
/// once, not once per document.
#[derive(Default)]
pub struct LocalTypes(tokio::sync::OnceCell<std::collections::HashSet<String>>);

impl LocalTypes {
    /// The types, read on first use.
    async fn get(
        &self,
        state: &AppState,
        tenant: &str,
    ) -> Result<&std::collections::HashSet<String>, StoreError> {
        self.0
            .get_or_try_init(|| locally_served(state, tenant))
            .await
    }
}

/// The task types no installed plugin declares that a live worker which may
/// run `tenant`'s tasks serves from a plugin of its own: their specs cannot
/// be checked here, so they are taken as they are and checked by that
/// plugin when the task runs. None when local plugins are off.
async fn locally_served(
    state: &AppState,
    tenant: &str,
) -> Result<std::collections::HashSet<String>, StoreError> {
    if !state.config.local_plugins {
        return Ok(Default::default());
    }
    Ok(pool_workers(state, tenant)
        .await?
        .into_iter()
        .flat_map(|worker| worker.served.types.into_iter())
        .filter(|(_, plugin)| plugin.local)
        .map(|(task_type, _)| task_type)
        .collect())
}

/// The releaser's check of a stage whose placeholders were resolved: the
/// same plugin check as at submit, classified the same way.
pub async fn check_resolved(
    state: &AppState,
    tenant: &str,
    task_type: &str,
    fields: &Map<String, Value>,
) -> Result<(), Rejection> {
    let unit = Unit {
        stage: None,
        task_type,
        fields,
        deferred: Vec::new(),
    };
    match state.validator.check(tenant, task_type, fields).await {
        Ok(()) => Ok(()),
        Err(SpecRejection::UnknownTaskType(_))
            if locally_served(state, tenant)
                .await
                .is_ok_and(|local| local.contains(task_type)) =>
        {
            Ok(())
        }
        Err(rejection) => Err(classify(state, Subject::Task, vec![(&unit, rejection)])),
    }
}

/// One spec a plugin checks: a task's, or one stage's.
struct Unit<'a> {
    /// The stage, for a workflow's unit: where its paths lead.
    stage: Option<&'a Stage>,
    task_type: &'a str,
    fields: &'a Map<String, Value>,
    /// Paths of fields that still hold placeholders (`spec.model`).
    deferred: Vec<String>,
}

impl Unit<'_> {
    /// A path inside the unit's spec (`spec.taskType`) from the document
    /// root.
    fn path(&self, inner: &str) -> String {
        match self.stage {
            Some(stage) => format!("{}.{inner}", stage.path),
            None => inner.to_string(),
        }
    }

    /// The plugin's errors, at their paths from the document root.
    fn relocate(&self, errors: Vec<FieldError>) -> Vec<FieldError> {
        match self.stage {
            Some(stage) => relocate_errors(errors, stage),
            None => errors,
        }
    }
}

fn units(document: &Document) -> Vec<Unit<'_>> {
    match document {
        Document::Task(task) => vec![Unit {
            stage: None,
            task_type: &task.spec.task_type,
            fields: &task.spec.plugin_fields,
            deferred: Vec::new(),
        }],
        Document::Workflow(workflow) => workflow
            .stages
            .iter()
            .map(|stage| Unit {
                stage: Some(stage),
                task_type: &stage.spec.task_type,
                fields: &stage.spec.plugin_fields,
                deferred: stage
                    .placeholders
                    .iter()
                    .map(|found| found.path.clone())
                    .collect(),
            })
            .collect(),
    }
}

/// What was submitted, for the wording of a refusal.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Subject {
    Task,
    Workflow,
}

impl Subject {
    fn of(document: &Document) -> Self {
        match document {
            Document::Task(_) => Self::Task,
            Document::Workflow(_) => Self::Workflow,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Workflow => "workflow",
        }
    }
}

/// The one mapping from the plugin checks' refusals to a [`Rejection`]:
/// each problem at its path; the kind is the problems' own when they are all
/// of one kind, else [`RejectionKind::InvalidSpec`].
fn classify(
    state: &AppState,
    subject: Subject,
    problems: Vec<(&Unit<'_>, SpecRejection)>,
) -> Rejection {
    let mut details = Vec::new();
    let mut kinds = Vec::new();
    let mut unknown = Vec::new();
    let mut first_message = String::new();
    for (unit, problem) in problems {
        let (kind, message) = match problem {
            SpecRejection::UnknownTaskType(task_type) => {
                details.push(FieldError::new(
                    unit.path("spec.taskType"),
                    match subject {
                        Subject::Task => "no installed plugin provides this task type".to_string(),
                        Subject::Workflow => {
                            format!("no installed plugin provides task type {task_type:?}")
                        }
                    },
                ));
                let message = format!(
                    "no installed plugin provides task type {task_type:?}; installed types: {}",
                    installed(state)
                );
                unknown.push(task_type);
                (RejectionKind::UnknownTaskType, message)
            }
            SpecRejection::Invalid(errors) => {
                details.extend(unit.relocate(errors));
                (
                    RejectionKind::InvalidSpec,
                    format!(
                        "the spec does not satisfy task type {:?}; see details",
                        unit.task_type
                    ),
                )
            }
            SpecRejection::CheckFailed(error) => {
                let message = format!("the plugin could not check the spec: {}", error.message);
                details.push(FieldError::new(unit.path("spec"), message.clone()));
                (RejectionKind::CheckFailed, message)
            }
        };
        if kinds.is_empty() {
            first_message = message;
        }
        kinds.push(kind);
    }
    let kind = match kinds.first() {
        Some(first) if kinds.iter().all(|kind| kind == first) => *first,
        _ => RejectionKind::InvalidSpec,
    };
    let message = match (subject, kind) {
        (Subject::Task, _) => first_message,
        (Subject::Workflow, RejectionKind::UnknownTaskType) => format!(
            "no installed plugin provides task type(s) {}; installed types: {}",
            unknown.join(", "),
            installed(state)
        ),
        (Subject::Workflow, _) => format!(
            "the workflow's stages have {} problem(s); see details",
            details.len()
        ),
    };
    Rejection::new(kind, message, details)
}

/// The installed task types, for a message.
fn installed(state: &AppState) -> String {
    let known = state.validator.task_types();
    if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    }
}

/// Fail-fast: refuses when a unit's type has no live worker among
/// `workers` (those that may run the tenant's tasks), with each reason once.
fn refuse_unserved(
    state: &AppState,
    document: &Document,
    units: &[Unit<'_>],
    workers: &[WorkerRecord],
) -> Result<(), AdmitError> {
    let mut details = Vec::new();
    let mut reasons: Vec<String> = Vec::new();
    for unit in units {
        if workers.iter().any(|worker| worker.serves(unit.task_type)) {
            continue;
        }
        let provider = state.validator.provider(unit.task_type);
        let reason =
            crate::placement::no_worker_for_type(unit.task_type, provider.as_deref(), workers);
        details.push(FieldError::new(
            unit.path("spec.taskType"),
            "no live worker serves this type",
        ));
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    if details.is_empty() {
        return Ok(());
    }
    Err(Rejection::new(
        RejectionKind::NoEligibleWorker,
        format!(
            "{}; the {} was not stored",
            reasons.join("; "),
            Subject::of(document).noun()
        ),
        details,
    )
    .into())
}
