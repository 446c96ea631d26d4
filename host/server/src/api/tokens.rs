//! `POST /tokens`, `GET /tokens`, `DELETE /tokens/{id}`: the token
//! lifecycle, admin only. Secrets are shown once, when made; a list shows
//! everything else. A revoked or expired token is refused within a second
//! on every server of the database (the token cache's lifetime).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use flowmesh_types::api::{ErrorBody, Role, TokenCreated, TokenRequest, TokenView};
use flowmesh_types::is_valid_name;

use super::query::{NoParams, Params};
use super::{ApiFailure, Auth, Body, parse_json};
use crate::state::{AppState, now_ms};
use crate::store::{NewToken, Revoked, rfc3339};

/// The longest lifetime a token may be given.
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// `POST /tokens`: a new bearer token.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = TokenRequest,
    responses((status = 201, body = TokenCreated), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn create(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Body(body): Body,
) -> Result<(StatusCode, Json<TokenCreated>), ApiFailure> {
    auth.require(&[Role::Admin], "creating tokens")?;
    let request: TokenRequest = parse_json(&body)?;
    if !is_valid_name(&request.tenant) {
        return Err(ApiFailure::invalid_field(
            "tenant",
            flowmesh_types::NAME_RULE,
        ));
    }
    if request.shared && request.role != Role::Worker {
        return Err(ApiFailure::invalid_field(
            "shared",
            "only a worker token can be shared; leave it out for admin and user tokens",
        ));
    }
    if request
        .name
        .as_ref()
        .is_some_and(|name| name.chars().count() > 256)
    {
        return Err(ApiFailure::invalid_field("name", "at most 256 characters"));
    }
    let now = now_ms();
    let expires_at = match &request.expires {
        None => None,
        Some(text) => {
            let lifetime = humantime::parse_duration(text)
                .ok()
                .filter(|lifetime| !lifetime.is_zero() && *lifetime <= MAX_LIFETIME)
                .ok_or_else(|| {
                    ApiFailure::invalid_field(
                        "expires",
                        "a lifetime such as 30d, 12h or 90m, at most 10 years",
                    )
                })?;
            Some(now.saturating_add(lifetime.as_millis() as i64))
        }
    };
    let record = state
        .store
        .create_token(
            &NewToken {
                tenant: &request.tenant,
                role: request.role,
                name: request.name.as_deref(),
                shared: request.shared,
                expires_at,
            },
            now,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            id: record.principal.token_id,
            token: record.secret,
            tenant: record.principal.tenant,
            role: record.principal.role,
            shared: record.principal.shared,
            expires_at: expires_at.map(rfc3339),
        }),
    ))
}

/// `GET /tokens`: every token, oldest first, without secrets.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<TokenView>), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn list(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
) -> Result<Json<Vec<TokenView>>, ApiFailure> {
    auth.require(&[Role::Admin], "listing tokens")?;
    Ok(Json(state.store.tokens().await?))
}

/// `DELETE /tokens/{id}`: revokes a token.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path, description = "Token id (not the secret)")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn revoke(
    _: Params<NoParams>,
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiFailure> {
    auth.require(&[Role::Admin], "revoking tokens")?;
    if id == auth.0.token_id {
        return Err(ApiFailure::new(
            StatusCode::CONFLICT,
            "own_token",
            "a token cannot revoke itself; revoke it with another admin token",
        ));
    }
    match state.store.revoke_token(&id, now_ms()).await? {
        Revoked::Now | Revoked::Already => {
            state.forget_tokens();
            Ok(StatusCode::NO_CONTENT)
        }
        Revoked::Unknown => Err(ApiFailure::not_found("token", &id)),
        Revoked::LastAdmin => Err(ApiFailure::new(
            StatusCode::CONFLICT,
            "last_admin_token",
            "this is the last admin token that is neither revoked nor expired; create another admin token first, so the server is not left without one",
        )),
    }
}
