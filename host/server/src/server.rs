//! Starting and stopping a server.

use axum::serve::ListenerExt;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use flowmesh_runtime::RuntimeConfig;
use flowmesh_types::api::Role;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{ServerConfig, Tls};
use crate::state::{AppState, now_ms};
use crate::store::{PluginRecord, Store};
use crate::validation::Validator;

/// Secrets created on the first start of a fresh database.
#[derive(Debug, Clone)]
pub struct BootstrapTokens {
    /// An admin token of tenant `default`.
    pub admin: String,
    /// A worker token.
    pub worker: String,
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    /// The local CA's certificate, with `--tls-self-signed`.
    ca_cert: Option<std::path::PathBuf>,
    /// Whether it speaks TLS.
    https: bool,
    state: Arc<AppState>,
    tasks: Vec<JoinHandle<()>>,
    bootstrap: Option<BootstrapTokens>,
}

impl Server {
    /// Opens the store, loads the installed plugins, and starts serving.
    ///
    /// On a fresh database it creates an admin and a worker token, writes
    /// them to `admin.token` and `worker.token` in the data directory (mode
    /// 0600), and returns them from [`Server::bootstrap_tokens`].
    pub async fn start(config: ServerConfig) -> anyhow::Result<Self> {
        if config.lease_ttl <= config.heartbeat_interval {
            anyhow::bail!(
                "the lease TTL ({}) must be longer than the heartbeat interval ({}), or every lease expires between heartbeats",
                humantime::format_duration(config.lease_ttl),
                humantime::format_duration(config.heartbeat_interval)
            );
        }
        flowmesh_tls::install_crypto_provider();
        if config.tls == Tls::Off && !config.bind.ip().is_loopback() {
            if !config.insecure_http {
                anyhow::bail!(
                    "refusing to serve plain HTTP on {}: tokens would travel in the clear. Give a certificate (--tls-cert FILE --tls-key FILE), or --tls-self-signed, or bind to 127.0.0.1; --insecure-http serves plain HTTP anyway (behind a TLS-terminating proxy)",
                    config.bind
                );
            }
            tracing::warn!(bind = %config.bind, "serving plain HTTP on a non-loopback address (--insecure-http): tokens travel in the clear");
        }
        flowmesh_types::private_fs::create_private_dir(&config.data_dir).with_context(|| {
            format!("creating the data directory {}", config.data_dir.display())
        })?;
        let (tls, ca_cert) = match &config.tls {
            Tls::Off => (None, None),
            Tls::Files { cert, key } => (
                Some(
                    flowmesh_tls::ServerTls::from_pem_files(cert, key)
                        .context("loading the TLS certificate (--tls-cert, --tls-key)")?,
                ),
                None,
            ),
            Tls::SelfSigned => {
                let (tls, ca) = flowmesh_tls::ServerTls::self_signed(
                    &config.data_dir.join("tls"),
                    &certificate_names(config.bind),
                )
                .context("making the self-signed certificate (--tls-self-signed)")?;
                (Some(tls), Some(ca.cert_path))
            }
        };
        let url = config
            .database_url
            .clone()
            .unwrap_or_else(|| Store::sqlite_url(&config.data_dir));
        let store = Store::open_with(&url, config.durability)
            .await
            .with_context(|| format!("opening the task store at {}", redact(&url)))?;
        let mut runtime = RuntimeConfig::new(
            config.data_dir.join("cache"),
            config.data_dir.join("validation-scratch"),
        );
        runtime.pool.max_instances = 16;
        runtime.validate_timeout = config.validation_timeout;
        // validate() runs while a client waits: bounded in instructions as
        // well as in time and memory (the default task limit), so a loop
        // ends at its budget even on a loaded machine.
        runtime.fuel_metering = true;
        runtime.default_limits.fuel = Some(config.validation_fuel);
        let validator = Validator::new(runtime, config.validation_share)
            .context("starting the validation runtime")?;
        let bootstrap = if store.admin_token_count().await? == 0 {
            let now = now_ms();
            let admin = store
                .create_token(&local_token("bootstrap admin", Role::Admin), now)
                .await?;
            let worker = store
                .create_token(&local_token("bootstrap worker", Role::Worker), now)
                .await?;
            write_secret(&config.data_dir.join("admin.token"), &admin.secret)?;
            write_secret(&config.data_dir.join("worker.token"), &worker.secret)?;
            Some(BootstrapTokens {
                admin: admin.secret,
                worker: worker.secret,
            })
        } else {
            None
        };
        store
            .grace_after_restart(now_ms(), config.lease_ttl.as_millis() as i64)
            .await?;
        let bind = config.bind;
        let install = config.install.clone();
        let shutdown = CancellationToken::new();
        let state = Arc::new(AppState::new(store, config, validator, shutdown.clone()));
        state.sync_plugins().await?;
        for path in &install {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading plugin {}", path.display()))?;
            let (_, record) = state
                .install_plugin(None, bytes)
                .await
                .with_context(|| format!("installing plugin {}", path.display()))?;
            tracing::info!(plugin = record.name, path = %path.display(), "installed at start");
        }
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("listening on {bind}"))?;
        let addr = listener.local_addr()?;
        let app = crate::routes::router(state.clone());
        let https = tls.is_some();
        let serve = {
            let shutdown = shutdown.clone();
            match tls {
                Some(tls) => tokio::spawn(flowmesh_tls::serve(listener, tls, app, shutdown)),
                None => {
                    // Event streams and long-poll answers are small writes:
                    // without TCP_NODELAY each can wait on the client's
                    // delayed ACK (~40 ms).
                    let listener = listener.tap_io(|tcp| {
                        if let Err(error) = tcp.set_nodelay(true) {
                            tracing::debug!(%error, "could not set TCP_NODELAY on a connection");
                        }
                    });
                    tokio::spawn(async move {
                        let result = axum::serve(listener, app)
                            .with_graceful_shutdown(shutdown.cancelled_owned())
                            .await;
                        if let Err(error) = result {
                            tracing::error!(%error, "HTTP server stopped");
                        }
                    })
                }
            }
        };
        let background = tokio::spawn(crate::background::run(state.clone()));
        let releaser = tokio::spawn(crate::releaser::run(state.clone()));
        let mut tasks = vec![serve, background, releaser];
        tasks.extend(crate::wake_across::start(&state, &url));
        tracing::info!(%addr, store = ?state.store.backend(), "server listening");
        Ok(Self {
            addr,
            ca_cert,
            https,
            state,
            tasks,
            bootstrap,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`, or `https://addr` with TLS; an unspecified address
    /// (`0.0.0.0`) is given as `127.0.0.1`, which a self-signed certificate
    /// names.
    pub fn url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        if self.https {
            format!("https://{addr}")
        } else {
            format!("http://{addr}")
        }
    }

    /// The local CA's certificate (PEM) that clients pin, when the server
    /// made its own certificate (`--tls-self-signed`).
    pub fn ca_cert(&self) -> Option<&std::path::Path> {
        self.ca_cert.as_deref()
    }

    /// The tokens created on first start, if this start created them.
    pub fn bootstrap_tokens(&self) -> Option<&BootstrapTokens> {
        self.bootstrap.as_ref()
    }

    /// Installs a plugin from its component bytes under the name its
    /// manifest gives, unless a plugin of that name is installed already:
    /// see [`AppState::install_plugin_unless_named`]. Returns the record in
    /// effect.
    pub async fn install_plugin_unless_named(
        &self,
        bytes: Vec<u8>,
    ) -> anyhow::Result<PluginRecord> {
        self.state
            .install_plugin_unless_named(bytes)
            .await
            .map_err(anyhow::Error::from)
    }

    /// The token in `file` of the data directory when it is a live token
    /// of `role` (for a worker token, a shared one); otherwise a new one of tenant `default`, written there
    /// (mode 0600). Local tools (`flowmesh up`) use it to find their
    /// credentials after the first start.
    pub async fn local_token(&self, file: &str, role: Role) -> anyhow::Result<String> {
        let path = self.state.config.data_dir.join(file);
        if let Ok(secret) = std::fs::read_to_string(&path) {
            let secret = secret.trim();
            let known = self
                .state
                .store
                .principal(&crate::store::token_hash(secret), now_ms())
                .await?;
            // The local worker serves every tenant: a worker token bound to
            // one is not what this file is for.
            if known.is_some_and(|principal| {
                principal.role == role && (role != Role::Worker || principal.shared)
            }) {
                return Ok(secret.to_string());
            }
        }
        let created = self
            .state
            .store
            .create_token(&local_token(file, role), now_ms())
            .await?;
        write_secret(&path, &created.secret)?;
        Ok(created.secret)
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Stops serving (open streams end) and waits for background work.
    pub async fn shutdown(self) {
        self.state.shutdown.cancel();
        // Long polls and event streams end with the server; do not wait on
        // them for long.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            for task in self.tasks {
                let _ = task.await;
            }
        })
        .await;
        self.state.store.close().await;
    }
}

/// Writes `bytes` to `path`, readable by its owner only (mode 0600 on Unix,
/// also when the file already existed with a wider mode).
pub fn write_private_file(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // An existing file keeps its mode on open: tighten it before writing.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The names a self-signed certificate for a server bound to `bind` holds:
/// `localhost`, the loopback addresses, the bound address (unless it is the
/// unspecified one) and the host name.
fn certificate_names(bind: SocketAddr) -> Vec<String> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !bind.ip().is_unspecified() && !bind.ip().is_loopback() {
        names.push(bind.ip().to_string());
    }
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() && !names.iter().any(|name| name == host) {
            names.push(host.to_string());
        }
    }
    names
}

/// A token of tenant `default` for local tools: never expiring, and for a
/// worker token, shared (the local worker serves every tenant).
fn local_token(name: &str, role: Role) -> crate::store::NewToken<'_> {
    crate::store::NewToken {
        tenant: "default",
        role,
        name: Some(name),
        shared: role == Role::Worker,
        expires_at: None,
    }
}

fn write_secret(path: &std::path::Path, secret: &str) -> anyhow::Result<()> {
    write_private_file(path, format!("{secret}\n").as_bytes())
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
