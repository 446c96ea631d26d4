//! Signing in with a pasted token, and out.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use flowmesh_types::api::Role;
use maud::{Markup, html};
use serde::Deserialize;

use super::page::{Failure, PageForm, PageResult, Section, page};
use super::session::{Viewer, cookie, same_site};
use crate::state::AppState;

/// `?next=` of the sign-in page.
#[derive(Deserialize)]
pub(super) struct Next {
    next: Option<String>,
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub(super) struct SignIn {
    token: String,
    next: Option<String>,
}

/// Only a path of this console is a place to return to: never another
/// site (`//host`, `https://…`).
fn safe_next(next: Option<&str>) -> &str {
    next.filter(|next| next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\"))
        .unwrap_or("/")
}

fn form_page(next: &str, error: Option<&str>) -> Markup {
    let body = html! {
        section.sign-in {
            h1 { "Sign in" }
            p { "Paste an API token: an admin token, or a user token of your tenant. "
                "It stays on the server; this browser keeps only a session cookie." }
            @if let Some(error) = error {
                p.error #sign-in-error role="alert" { (error) }
            }
            form method="post" action="/sign-in" {
                input type="hidden" name="next" value=(next);
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="off" required autofocus;
                button type="submit" { "Sign in" }
            }
            p.muted { "On the server's machine, " code { "flowmesh up" } " wrote an admin token to its data directory ("
                code { "admin.token" } ")." }
        }
    };
    page(None, Section::None, "Sign in", body)
}

/// `GET /sign-in`.
pub(super) async fn form(Query(next): Query<Next>) -> Markup {
    form_page(safe_next(next.next.as_deref()), None)
}

/// `POST /sign-in`: a session for a live admin or user token.
pub(super) async fn submit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    PageForm(form): PageForm<SignIn>,
) -> PageResult {
    same_site(&headers)?;
    let next = safe_next(form.next.as_deref()).to_string();
    let secret = form.token.trim().to_string();
    let refuse = |message: &str| {
        Ok((StatusCode::UNAUTHORIZED, form_page(&next, Some(message))).into_response())
    };
    if secret.is_empty() || secret.len() > 512 {
        return refuse("Paste a token.");
    }
    match state.authenticate(&secret).await.map_err(Failure::from)? {
        None => refuse("That token is not valid: it is unknown, revoked or expired."),
        Some(principal) if principal.role == Role::Worker => {
            refuse("That is a worker token; sign in with an admin or user token.")
        }
        Some(_) => {
            let id = state.console.open(secret);
            let mut response = Redirect::to(&next).into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, cookie(Some(&id), secure(&state)));
            Ok(response)
        }
    }
}

/// The sign-out form's field.
#[derive(Deserialize)]
pub(super) struct SignOut {
    csrf: String,
}

/// `POST /sign-out`: ends the session and clears the cookie.
pub(super) async fn sign_out(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    headers: HeaderMap,
    PageForm(form): PageForm<SignOut>,
) -> PageResult {
    viewer.check_form(&headers, &form.csrf)?;
    state.console.close(&viewer.session);
    let mut response = Redirect::to("/sign-in").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(None, secure(&state)));
    Ok(response)
}

/// Cookies are `Secure` when the server speaks TLS.
fn secure(state: &AppState) -> bool {
    !matches!(state.config.tls, crate::config::Tls::Off)
}

/// Keeps the session module's cookie name in one place for tests.
#[cfg(test)]
mod tests {
    #[test]
    fn only_local_paths_are_places_to_return_to() {
        assert_eq!(
            super::safe_next(Some("/tasks?state=pending")),
            "/tasks?state=pending"
        );
        assert_eq!(super::safe_next(Some("//evil.example/")), "/");
        assert_eq!(super::safe_next(Some("https://evil.example/")), "/");
        assert_eq!(super::safe_next(Some("/\\evil.example")), "/");
        assert_eq!(super::safe_next(None), "/");
        assert_eq!(super::super::session::COOKIE, "flowmesh_session");
    }
}
