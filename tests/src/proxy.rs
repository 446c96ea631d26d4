//! A cuttable link between a worker and its server: an HTTP proxy on
//! loopback that forwards every request to the server, until the test cuts
//! it, whole or for some routes.
//!
//! It can also alter what passes, as an attacker on the path would: the
//! answers to some routes replaced with other bytes.
//!
//! A cut link behaves like a network link that is down, not like a server
//! that refuses: a request sent over it gets no answer, and waits. When the
//! link is restored, the requests still waiting go through; one whose
//! client gave up meanwhile (it timed out and closed its connection) is
//! never delivered, as a packet that was never retransmitted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

/// What the link lets through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Link {
    /// Everything.
    #[default]
    Up,
    /// Nothing.
    Down,
    /// Everything but requests whose path ends with one of these.
    Holding(Vec<String>),
}

impl Link {
    fn passes(&self, path: &str) -> bool {
        match self {
            Self::Up => true,
            Self::Down => false,
            Self::Holding(paths) => !paths.iter().any(|held| path.ends_with(held.as_str())),
        }
    }
}

/// Answers replaced on the way: to requests whose path holds the first,
/// the second as the body.
type Tamper = Option<(String, Bytes)>;

struct Shared {
    upstream: String,
    client: reqwest::Client,
    link: watch::Receiver<Link>,
    tamper: Mutex<Tamper>,
    tampered: AtomicUsize,
}

/// A running proxy; it stops when dropped.
pub struct Proxy {
    url: String,
    link: watch::Sender<Link>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A proxy on a free loopback port to the server at `upstream`
    /// (`http://host:port`), with its link up.
    pub async fn start(upstream: &str) -> Self {
        let (link, receiver) = watch::channel(Link::Up);
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("an HTTP client"),
            link: receiver,
            tamper: Mutex::new(None),
            tampered: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the proxy");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            link,
            shared,
            task,
        }
    }

    /// Replaces the body of every answer to a request whose path holds
    /// `path` with `body`, until [`Proxy::stop_tampering`].
    pub fn tamper(&self, path: &str, body: Vec<u8>) {
        *self
            .shared
            .tamper
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((path.to_string(), body.into()));
    }

    /// Lets answers through unaltered again.
    pub fn stop_tampering(&self) {
        *self
            .shared
            .tamper
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// How many answers were altered so far.
    pub fn tampered(&self) -> usize {
        self.shared.tampered.load(Ordering::SeqCst)
    }

    /// The proxy's base URL, to give the worker as its server.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Takes the link down: no request goes through until [`Proxy::restore`].
    pub fn cut(&self) {
        self.link.send_replace(Link::Down);
    }

    /// Holds requests whose path ends with one of `paths` (for example
    /// `/worker/claim`); the others go through.
    pub fn hold(&self, paths: &[&str]) {
        self.link
            .send_replace(Link::Holding(paths.iter().map(|p| p.to_string()).collect()));
    }

    /// Brings the link back up; waiting requests go through.
    pub fn restore(&self) {
        self.link.send_replace(Link::Up);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Headers that belong to one connection, not to the request, and the
/// length, which the forwarded body sets again.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !hop_by_hop(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let mut link = shared.link.clone();
    // Dropped with the request when the client gives up: never delivered.
    if link.wait_for(|link| link.passes(&path)).await.is_err() {
        return StatusCode::BAD_GATEWAY.into_response();
    }
    let target = format!(
        "{}{}",
        shared.upstream,
        request
            .uri()
            .path_and_query()
            .map_or("/", |path| path.as_str())
    );
    let method = request.method().clone();
    let mut headers = HeaderMap::new();
    copy_headers(request.headers(), &mut headers);
    let body: Bytes = match axum::body::to_bytes(request.into_body(), usize::MAX).await {
        Ok(body) => body,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let answer = match shared
        .client
        .request(method, target)
        .headers(headers)
        .body(body)
        .send()
        .await
    {
        Ok(answer) => answer,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let status = answer.status();
    let mut response_headers = HeaderMap::new();
    copy_headers(answer.headers(), &mut response_headers);
    // A held answer waits too: the link can go down mid-exchange.
    let Ok(body) = answer.bytes().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    if link.wait_for(|link| link.passes(&path)).await.is_err() {
        return StatusCode::BAD_GATEWAY.into_response();
    }
    let replacement = match &*shared.tamper.lock().unwrap_or_else(PoisonError::into_inner) {
        Some((held, replacement)) if path.contains(held.as_str()) => Some(replacement.clone()),
        _ => None,
    };
    let body = match replacement {
        Some(replacement) => {
            shared.tampered.fetch_add(1, Ordering::SeqCst);
            replacement
        }
        None => body,
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    response
}
