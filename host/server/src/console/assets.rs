//! The console's stylesheet and script, embedded in the binary.
//!
//! Pages link each asset by a URL that carries a hash of its content, so a
//! browser may keep it for a year (`immutable`): a new build changes the
//! URL. Nothing is fetched from anywhere else: no CDN, no fonts.

use std::sync::LazyLock;

use axum::extract::{Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
pub struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
    version: LazyLock<String>,
}

impl Asset {
    /// The URL pages link it by.
    pub fn url(&self) -> String {
        format!("/assets/{}?v={}", self.name, *self.version)
    }
}

const fn asset(
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
    version: fn() -> String,
) -> Asset {
    Asset {
        name,
        content_type,
        body,
        version: LazyLock::new(version),
    }
}

fn short_hash(body: &str) -> String {
    hex::encode(&Sha256::digest(body.as_bytes())[..6])
}

const CSS_BODY: &str = include_str!("assets/console.css");
const JS_BODY: &str = include_str!("assets/console.js");

/// The stylesheet.
pub static CSS: Asset = asset("console.css", "text/css; charset=utf-8", CSS_BODY, || {
    short_hash(CSS_BODY)
});
/// The script: live updates over `EventSource`, the submit page's checks.
pub static JS: Asset = asset(
    "console.js",
    "text/javascript; charset=utf-8",
    JS_BODY,
    || short_hash(JS_BODY),
);

/// `?v=` on an asset URL.
#[derive(serde::Deserialize)]
pub(super) struct Version {
    v: Option<String>,
}

/// `GET /assets/{name}`.
pub(super) async fn serve(Path(name): Path<String>, Query(version): Query<Version>) -> Response {
    let Some(asset) = [&CSS, &JS].into_iter().find(|asset| asset.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let cache = if version.v.as_deref() == Some(asset.version.as_str()) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", *asset.version)) {
        headers.insert(header::ETAG, etag);
    }
    response
}
