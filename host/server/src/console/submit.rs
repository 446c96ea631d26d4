//! Submit a document: paste or upload YAML, check it (a dry run through the
//! same admission as `POST /api/v1/tasks`), see each problem at its field
//! path beside the text, then submit it and go to its page.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use flowmesh_types::FieldError;
use maud::{Markup, html};
use serde::Deserialize;

use super::page::{PageForm, PageResult, Section, csrf_field, page};
use super::session::Viewer;
use crate::admission::{self, Admitted, Checked};
use crate::api::ApiFailure;
use crate::state::AppState;

const EXAMPLE: &str = "apiVersion: flowmesh/v1
kind: Task
metadata:
  name: hello
spec:
  taskType: echo
  message: hello from the console
";

/// What the check or the submission said.
enum Verdict {
    Valid(String),
    Refused {
        message: String,
        details: Vec<FieldError>,
    },
}

fn form_page(viewer: &Viewer, document: &str, verdict: Option<&Verdict>) -> Markup {
    let body = html! {
        h1 { "Submit" }
        p.muted { "A Task or Workflow document in YAML or JSON. " strong { "Check" } " runs every check and stores nothing; "
                  strong { "Submit" } " stores it and opens its page." }
        div.submit-layout {
            form #submit-form method="post" action="/submit" {
                (csrf_field(&viewer.csrf))
                label for="document" { "Document" }
                textarea #document name="document" rows="18" spellcheck="false" required { (document) }
                div.actions {
                    label.file { "Load a file " input #upload type="file" accept=".yaml,.yml,.json,text/yaml,application/json"; }
                    button #check.secondary type="submit" name="action" value="check" { "Check" }
                    button #submit type="submit" name="action" value="submit" { "Submit" }
                }
            }
            aside #verdict aria-live="polite" {
                @match verdict {
                    None => { p.muted { "Check the document to see any problems here, each at its field." } }
                    Some(Verdict::Valid(message)) => { p.valid #valid-message { (message) } }
                    Some(Verdict::Refused { message, details }) => {
                        p.error #refused-message role="alert" { (message) }
                        @if !details.is_empty() {
                            ul #field-errors {
                                @for detail in details {
                                    li { code.path { (if detail.path.is_empty() { "(document)" } else { detail.path.as_str() }) } " " (detail.message) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(Some(viewer.who()), Section::Submit, "Submit", body)
}

/// `GET /submit`.
pub(super) async fn form(viewer: Viewer) -> Markup {
    form_page(&viewer, EXAMPLE, None)
}

/// The submit form's fields.
#[derive(Deserialize)]
pub(super) struct Submission {
    csrf: String,
    document: String,
    #[serde(default)]
    action: String,
}

/// `POST /submit`: checks, or stores and redirects to the new page.
pub(super) async fn submit(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    headers: HeaderMap,
    PageForm(form): PageForm<Submission>,
) -> PageResult {
    viewer.check_form(&headers, &form.csrf)?;
    let dry_run = form.action != "submit";
    let refused = |failure: ApiFailure| {
        let status = failure.status;
        let verdict = Verdict::Refused {
            message: failure.error.message,
            details: failure.error.details,
        };
        Ok((status, form_page(&viewer, &form.document, Some(&verdict))).into_response())
    };
    if let Err(refusal) = state.limits.submit(&viewer.principal.token_id, 1) {
        return refused(refusal.into());
    }
    let options = admission::Options {
        fail_fast: false,
        dry_run,
    };
    let admitted = match admission::admit(
        &state,
        &viewer.principal.tenant,
        form.document.as_bytes(),
        options,
    )
    .await
    {
        Ok(admitted) => admitted,
        Err(error) => return refused(error.into()),
    };
    let verdict = match admitted {
        Admitted::DryRun(Checked::Task(document)) => Verdict::Valid(format!(
            "Valid: a task of type {}. Nothing was stored; press Submit to run it.",
            document.spec.task_type
        )),
        Admitted::DryRun(Checked::Workflow(workflow)) => Verdict::Valid(format!(
            "Valid: a workflow of {} stages. Nothing was stored; press Submit to run it.",
            workflow.stages.len()
        )),
        Admitted::Task { id, .. } => {
            return Ok(Redirect::to(&format!("/tasks/{id}")).into_response());
        }
        Admitted::Workflow { id, .. } => {
            return Ok(Redirect::to(&format!("/workflows/{id}")).into_response());
        }
    };
    Ok((
        StatusCode::OK,
        form_page(&viewer, &form.document, Some(&verdict)),
    )
        .into_response())
}
