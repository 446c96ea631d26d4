//! Many documents in one request.
//!
//! Each document is parsed and checked on its own, by the same steps as a
//! single one, several at once (each `validate()` still within the
//! tenant's share of the validation pool). Its problems are reported under
//! its index in the batch (`[17].spec.message`). Then:
//!
//! - by default, one refused document refuses the whole batch
//!   ([`RejectionKind::InvalidBatch`]) and nothing is stored;
//! - with [`BatchOptions::partial`], the valid documents are stored and the
//!   others reported, each on its own;
//! - on a dry run, nothing is stored either way.
//!
//! The documents stored are written together, in one transaction, within
//! the tenant's pending limit: a batch that would pass it is refused whole.

use flowmesh_types::document::batch::at_index;
use flowmesh_types::{Document, FieldError};
use futures::StreamExt;

use super::write::{StoredId, write};
use super::{
    AdmitError, Checked, LocalTypes, Rejection, RejectionKind, check, fail_fast_workers,
    parse_document,
};
use crate::state::AppState;

/// Documents checked at once, beyond which a batch's checks wait their turn.
const CHECKS_AT_ONCE: usize = 16;

/// How to admit a batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchOptions {
    /// Refuse a document some of whose task types no live worker serves.
    pub fail_fast: bool,
    /// Check everything, store nothing.
    pub dry_run: bool,
    /// Store the valid documents even when others are refused.
    pub partial: bool,
}

/// What became of one document of a batch.
#[derive(Debug)]
pub enum DocumentOutcome {
    /// Stored.
    Stored(StoredId),
    /// Valid, on a dry run: `Task` or `Workflow`.
    Valid(&'static str),
    /// Refused, with paths from the batch's root; the document's kind when
    /// it parsed.
    Refused(Option<&'static str>, Rejection),
}

/// What admission did with a batch, one outcome per document in order.
#[derive(Debug)]
pub struct BatchOutcome {
    /// Per document.
    pub documents: Vec<DocumentOutcome>,
}

impl BatchOutcome {
    /// How many were refused.
    pub fn refused(&self) -> usize {
        self.documents
            .iter()
            .filter(|outcome| matches!(outcome, DocumentOutcome::Refused(..)))
            .count()
    }
}

fn kind_of(document: &Document) -> &'static str {
    match document {
        Document::Task(_) => "Task",
        Document::Workflow(_) => "Workflow",
    }
}

/// A refusal of the document at `index`, its paths from the batch's root;
/// one without details gets one at the document itself.
fn indexed(index: usize, rejection: Rejection) -> Rejection {
    let details = if rejection.details.is_empty() {
        vec![FieldError::new("", rejection.message.clone())]
    } else {
        rejection.details
    };
    Rejection {
        details: at_index(index, details),
        ..rejection
    }
}

/// Parses, checks and (unless refused, or a dry run) stores the documents
/// `texts` of `tenant`.
pub async fn admit_batch(
    state: &AppState,
    tenant: &str,
    texts: &[&str],
    options: BatchOptions,
) -> Result<BatchOutcome, AdmitError> {
    let workers = fail_fast_workers(state, tenant, options.fail_fast).await?;
    let local = LocalTypes::default();
    let mut parsed = Vec::with_capacity(texts.len());
    for (index, text) in texts.iter().enumerate() {
        parsed.push(parse_document(text).map_err(|rejection| indexed(index, rejection)));
        if index % 256 == 255 {
            // Parsing a large batch takes a while: let other requests run.
            tokio::task::yield_now().await;
        }
    }
    let checks = parsed.into_iter().enumerate().map(|(index, parsed)| {
        let workers = workers.as_deref();
        let local = &local;
        async move {
            let document = match parsed {
                Ok(document) => document,
                Err(rejection) => return Ok(Err((None, rejection))),
            };
            let kind = kind_of(&document);
            match check(state, tenant, document, workers, local).await {
                Ok(checked) => Ok(Ok(checked)),
                Err(AdmitError::Rejected(rejection)) => {
                    Ok(Err((Some(kind), indexed(index, rejection))))
                }
                Err(error) => Err(error),
            }
        }
    });
    let checked: Vec<Result<Checked, (Option<&'static str>, Rejection)>> =
        futures::stream::iter(checks)
            .buffered(CHECKS_AT_ONCE)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, AdmitError>>()?;
    let refused = checked.iter().filter(|result| result.is_err()).count();
    if refused > 0 && !options.partial {
        return Err(refuse_whole(texts.len(), checked).into());
    }
    if options.dry_run {
        return Ok(BatchOutcome {
            documents: checked
                .into_iter()
                .map(|result| match result {
                    Ok(Checked::Task(_)) => DocumentOutcome::Valid("Task"),
                    Ok(Checked::Workflow(_)) => DocumentOutcome::Valid("Workflow"),
                    Err((kind, rejection)) => DocumentOutcome::Refused(kind, rejection),
                })
                .collect(),
        });
    }
    let mut outcomes: Vec<Option<DocumentOutcome>> = Vec::with_capacity(checked.len());
    let mut valid = Vec::with_capacity(checked.len() - refused);
    for result in checked {
        match result {
            Ok(document) => {
                outcomes.push(None);
                valid.push(document);
            }
            Err((kind, rejection)) => {
                outcomes.push(Some(DocumentOutcome::Refused(kind, rejection)))
            }
        }
    }
    if !valid.is_empty() {
        let (stored, _) = write(state, tenant, valid).await?;
        let unfilled = outcomes.iter_mut().filter(|outcome| outcome.is_none());
        for (outcome, id) in unfilled.zip(stored) {
            *outcome = Some(DocumentOutcome::Stored(id));
        }
    }
    Ok(BatchOutcome {
        documents: outcomes.into_iter().flatten().collect(),
    })
}

/// The refusal of a whole batch: every problem of every refused document,
/// each at its index.
fn refuse_whole(
    total: usize,
    checked: Vec<Result<Checked, (Option<&'static str>, Rejection)>>,
) -> Rejection {
    let mut details = Vec::new();
    let mut refused = 0;
    for (_, rejection) in checked.into_iter().filter_map(Result::err) {
        refused += 1;
        details.extend(rejection.details);
    }
    Rejection::new(
        RejectionKind::InvalidBatch,
        format!(
            "{refused} of the batch's {total} document(s) were refused, so none was stored; each problem is listed at its document's index ([i].path): fix them, or send ?partial=true to store the valid ones"
        ),
        details,
    )
}
