//! Console sessions: a token pasted once, a cookie after.
//!
//! Signing in exchanges an API token (admin or tenant user) for a random
//! session id, sent back as an `HttpOnly`, `SameSite=Strict` cookie (and
//! `Secure` when the server speaks TLS). The token stays on the server: it
//! never appears in a URL, a page or a script. Every request looks the token
//! up again through [`AppState::authenticate`], so a revoked or expired token
//! ends its sessions within a second. Signing out forgets the session.
//!
//! Requests that change state (sign-out, cancel, submit, plugin removal)
//! carry the session's CSRF token in a form field, and are refused when the
//! browser says they come from another site (`Sec-Fetch-Site`, `Origin`).
//! Sessions live in the memory of the server that signed the browser in: a
//! restart signs everyone out.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use flowmesh_types::api::Role;

use super::page::{Failure, Who};
use crate::state::AppState;
use crate::store::Principal;

/// The session cookie's name.
pub const COOKIE: &str = "flowmesh_session";
/// The signed-in caller of a console page.
#[derive(Clone)]
pub struct Viewer {
    /// Who they are.
    pub principal: Principal,
    /// The token forms must carry back.
    pub csrf: String,
    /// The session id, for signing out.
    pub(super) session: String,
}

impl Viewer {
    /// Who the page shell shows as signed in.
    pub fn who(&self) -> Who<'_> {
        Who {
            role: self.principal.role.as_str(),
            tenant: &self.principal.tenant,
            csrf: &self.csrf,
            admin: self.is_admin(),
        }
    }

    /// True for an admin.
    pub fn is_admin(&self) -> bool {
        self.principal.role == Role::Admin
    }

    /// Refuses (403 page) unless the viewer is an admin.
    pub fn require_admin(&self, what: &str) -> Result<(), Failure> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Failure::new(
                StatusCode::FORBIDDEN,
                format!(
                    "{what} needs an admin token; you are signed in as a user of tenant {:?}",
                    self.principal.tenant
                ),
            ))
        }
    }

    /// Refuses a state-changing request whose CSRF field does not match
    /// the session's, or that the browser marks as cross-site.
    pub fn check_form(&self, headers: &HeaderMap, csrf: &str) -> Result<(), Failure> {
        same_site(headers)?;
        if constant_time_eq(csrf.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(Failure::new(
                StatusCode::FORBIDDEN,
                "the form is out of date or came from another site; reload the page and try again",
            ))
        }
    }
}

/// Refuses requests the browser says come from another site.
pub(super) fn same_site(headers: &HeaderMap) -> Result<(), Failure> {
    let cross_site = || {
        Failure::new(
            StatusCode::FORBIDDEN,
            "cross-site requests cannot change anything here; use the console's own pages",
        )
    };
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(cross_site());
    }
    if let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if origin != "null" && origin_host != host {
            return Err(cross_site());
        }
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session id the browser sent, if any.
pub(super) fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|value| !value.is_empty() && value.len() <= 128)
}

/// The `Set-Cookie` value that holds session `id`; `None` clears it.
pub(super) fn cookie(id: Option<&str>, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = match id {
        Some(id) => format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}"),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Where a request without a session is sent: the sign-in page, which
/// returns to `path` afterwards.
fn to_sign_in(parts: &Parts) -> Response {
    let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
    if parts.method == axum::http::Method::GET {
        Redirect::to(&format!("/sign-in?next={next}")).into_response()
    } else {
        Failure::new(
            StatusCode::UNAUTHORIZED,
            "your session has ended; sign in again",
        )
        .into_response()
    }
}

impl FromRequestParts<Arc<AppState>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let Some(session) = session_id(&parts.headers) else {
            return Err(to_sign_in(parts));
        };
        let Some((secret, csrf)) = state.console.touch(&session) else {
            return Err(to_sign_in(parts));
        };
        let principal = state
            .authenticate(&secret)
            .await
            .map_err(|error| Failure::from(error).into_response())?;
        match principal {
            Some(principal) if principal.role != Role::Worker => Ok(Self {
                principal,
                csrf,
                session,
            }),
            _ => {
                state.console.close(&session);
                Err(to_sign_in(parts))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("a header"));
        }
        map
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let map = headers(&[("cookie", "theme=dark; flowmesh_session=abc123; other=1")]);
        assert_eq!(session_id(&map).as_deref(), Some("abc123"));
        assert_eq!(
            session_id(&headers(&[("cookie", "flowmesh_session=")])),
            None
        );
        assert_eq!(session_id(&headers(&[])), None);
    }

    #[test]
    fn cross_site_requests_are_refused() {
        assert!(same_site(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
        assert!(same_site(&headers(&[("sec-fetch-site", "none")])).is_ok());
        assert!(same_site(&headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(same_site(&headers(&[("sec-fetch-site", "same-site")])).is_err());
        let host = [("host", "127.0.0.1:7700")];
        assert!(same_site(&headers(&[host[0], ("origin", "http://127.0.0.1:7700")])).is_ok());
        assert!(same_site(&headers(&[host[0], ("origin", "http://evil.example")])).is_err());
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_tls() {
        let plain = cookie(Some("id"), false);
        assert_eq!(
            plain.to_str().expect("text"),
            "flowmesh_session=id; Path=/; HttpOnly; SameSite=Strict"
        );
        assert!(
            cookie(Some("id"), true)
                .to_str()
                .expect("text")
                .ends_with("; Secure")
        );
        assert!(
            cookie(None, false)
                .to_str()
                .expect("text")
                .contains("Max-Age=0")
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
