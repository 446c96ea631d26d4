//! The page shell every console page shares, error pages, and the small
//! pieces pages are built from (state badges, times, JSON blocks).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::assets;
use crate::api::ApiFailure;
use crate::store::StoreError;

/// Which section of the navigation a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The overview.
    Overview,
    /// Task list and detail.
    Tasks,
    /// Workflow list and detail.
    Workflows,
    /// Workers.
    Workers,
    /// Plugins.
    Plugins,
    /// Tokens (admin).
    Tokens,
    /// Submit a document.
    Submit,
    /// Sign-in and error pages.
    None,
}

/// Who is signed in, as the page shell shows them.
pub struct Who<'a> {
    /// Their role.
    pub role: &'a str,
    /// Their tenant.
    pub tenant: &'a str,
    /// The token the sign-out form carries.
    pub csrf: &'a str,
    /// Admins also see the tokens page.
    pub admin: bool,
}

/// A whole page: `title`, the navigation with `section` marked, `body`.
pub fn page(viewer: Option<Who<'_>>, section: Section, title: &str, body: Markup) -> Markup {
    let link = |target: Section, href: &str, label: &str| {
        html! {
            a href=(href) aria-current=[(section == target).then_some("page")] { (label) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · FlowMesh" }
                link rel="stylesheet" href=(assets::CSS.url());
                script src=(assets::JS.url()) defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "FlowMesh" }
                    @if let Some(viewer) = &viewer {
                        nav aria-label="Sections" {
                            (link(Section::Overview, "/", "Overview"))
                            (link(Section::Tasks, "/tasks", "Tasks"))
                            (link(Section::Workflows, "/workflows", "Workflows"))
                            (link(Section::Workers, "/workers", "Workers"))
                            (link(Section::Plugins, "/plugins", "Plugins"))
                            @if viewer.admin {
                                (link(Section::Tokens, "/tokens", "Tokens"))
                            }
                            (link(Section::Submit, "/submit", "Submit"))
                        }
                        form.who method="post" action="/sign-out" {
                            span { (viewer.role) " · tenant " strong { (viewer.tenant) } }
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

/// A console error: a page with a status and what to do.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    /// A failure page with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// The not-found page, the same for a missing thing and another
    /// tenant's.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("There is no {what} {id:?}."))
    }
}

impl Failure {
    /// An API failure of looking up `what` `id`: the not-found page when
    /// it does not exist for the viewer, the failure otherwise.
    pub fn lookup(failure: ApiFailure, what: &str, id: &str) -> Self {
        if failure.status == StatusCode::NOT_FOUND {
            Self::not_found(what, id)
        } else {
            Self::from(failure)
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let title = if self.status == StatusCode::NOT_FOUND {
            "Not found"
        } else {
            self.status.canonical_reason().unwrap_or("Error")
        };
        let body = html! {
            section.failure {
                h1 { (title) }
                p #failure-message { (self.message) }
                p { a href="/" { "Back to the overview" } }
            }
        };
        (self.status, page(None, Section::None, title, body)).into_response()
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        let api = ApiFailure::from(error);
        Self::new(api.status, api.error.message)
    }
}

impl From<ApiFailure> for Failure {
    fn from(failure: ApiFailure) -> Self {
        if failure.status == StatusCode::NOT_FOUND {
            return Self::new(StatusCode::NOT_FOUND, failure.error.message);
        }
        let mut message = failure.error.message;
        for detail in failure.error.details {
            message.push_str(&format!("; {}: {}", detail.path, detail.message));
        }
        Self::new(failure.status, message)
    }
}

/// A form's fields; a form that cannot be read (a field missing or
/// malformed) answers a 400 page, not a bare text.
pub struct PageForm<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for PageForm<T> {
    type Rejection = Failure;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Failure> {
        axum::Form::<T>::from_request(request, state)
            .await
            .map(|axum::Form(fields)| Self(fields))
            .map_err(|rejection| {
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "the form could not be read ({}); reload the page and try again",
                        rejection.body_text()
                    ),
                )
            })
    }
}

/// A page's result.
pub type PageResult = Result<Response, Failure>;

/// A task or stage state as a coloured badge; `data-state` lets live
/// updates restyle it.
pub fn state_badge(state: &str) -> Markup {
    html! { span.state data-state=(state) { (state) } }
}

/// An RFC 3339 time as people read it, in UTC, with the machine form kept.
pub fn time(rfc3339: &str) -> Markup {
    let shown = rfc3339
        .get(..19)
        .map(|prefix| prefix.replace('T', " "))
        .unwrap_or_else(|| rfc3339.to_string());
    html! { time datetime=(rfc3339) { (shown) " UTC" } }
}

/// An optional time, or a dash.
pub fn maybe_time(rfc3339: Option<&str>) -> Markup {
    match rfc3339 {
        Some(at) => time(at),
        None => html! { span.muted { "—" } },
    }
}

/// A JSON value, pretty-printed in a scrollable block.
pub fn json_block(value: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    html! { pre.json { code { (text) } } }
}

/// A hidden field with the session's CSRF token, for a form.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// A value already HTML-safe (an SVG drawing built with escaping).
pub fn trusted(markup: String) -> Markup {
    PreEscaped(markup)
}

/// A count with its noun, singular or plural.
pub fn count(n: impl Into<i64>, one: &str, many: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}
