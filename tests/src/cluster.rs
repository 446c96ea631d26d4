//! Real servers and workers for end-to-end tests: a [`TestServer`] on a fresh
//! SQLite file or PostgreSQL database, [`TestWorker`]s with real runtimes and
//! real plugins, talking over HTTP on loopback, and an [`Api`] client.
//!
//! PostgreSQL tests use the server at `FLOWMESH_TEST_POSTGRES`; without it,
//! the first one runs `scripts/postgres.sh`, which installs PostgreSQL from
//! the distribution's packages if it is missing, starts it, and prints its
//! URL. Each test gets its own database, dropped afterwards.

use std::path::Path;
use std::time::Duration;

use flowmesh_runtime::HostCapabilities;
use flowmesh_server::{Server, ServerConfig};
use flowmesh_worker::{Worker, WorkerConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Executor;

use crate::TestRuntime;

/// Runs each listed `async fn name(db: Db)` of the calling module as two
/// tests, `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::cluster::Db::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::cluster::Db::Postgres).await
                }
            )*
        }
    };
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the test PostgreSQL server.
    Postgres,
}

/// The test PostgreSQL server's URL: `FLOWMESH_TEST_POSTGRES`, or the server
/// `scripts/postgres.sh` starts (once per test process).
pub fn postgres_url() -> String {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("FLOWMESH_TEST_POSTGRES") {
            return url;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/postgres.sh");
        let output = std::process::Command::new(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap_or_else(|error| panic!("running {}: {error}", script.display()));
        assert!(
            output.status.success(),
            "{} could not start PostgreSQL; set FLOWMESH_TEST_POSTGRES to a server's URL instead",
            script.display()
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    })
    .clone()
}

/// A database for one test; a PostgreSQL one is dropped when this is.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    /// The data directory (holds the SQLite file for [`Db::Sqlite`]).
    pub dir: tempfile::TempDir,
    postgres_name: Option<String>,
}

impl TestDb {
    /// A fresh, empty database.
    pub async fn new(db: Db) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        match db {
            Db::Sqlite => Self {
                url: flowmesh_server::store::Store::sqlite_url(dir.path()),
                dir,
                postgres_name: None,
            },
            Db::Postgres => {
                let admin = postgres_url();
                let name = format!("flowmesh_test_{}", uuid::Uuid::new_v4().simple());
                sqlx::any::install_default_drivers();
                let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .unwrap_or_else(|error| {
                        panic!("PostgreSQL at {admin} is not reachable ({error}); start it with scripts/postgres.sh or set FLOWMESH_TEST_POSTGRES")
                    });
                connection
                    .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .expect("create the test database");
                let base = admin
                    .rsplit_once('/')
                    .map_or(admin.as_str(), |(base, _)| base);
                Self {
                    url: format!("{base}/{name}"),
                    dir,
                    postgres_name: Some(name),
                }
            }
        }
    }
}

impl TestDb {
    /// The lease token task `id` runs under now, read from the store: what
    /// a worker that was killed holding it could still send.
    pub async fn lease_token(&self, id: &str) -> String {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.url)
            .await
            .expect("the store opens");
        let sql = if self.postgres_name.is_some() {
            "SELECT lease_token FROM tasks WHERE id = $1"
        } else {
            "SELECT lease_token FROM tasks WHERE id = ?"
        };
        let token: String = sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("the task's lease token");
        pool.close().await;
        token
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop runs outside async code: use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(mut connection) =
                    <sqlx::AnyConnection as sqlx::Connection>::connect(&postgres_url()).await
                {
                    let _ = connection
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Polls `probe` every 25 ms until it answers `Ok`, and returns that; panics
/// after `within` with `what` and the last `Err` (what was seen instead).
pub async fn eventually<T, F, Fut, E>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(seen) => assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}; last seen: {seen}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The task types a worker (as `GET /workers/{id}` shows it) advertises.
pub fn task_types(worker: &Value) -> Vec<String> {
    worker["capabilities"]["supportedTaskTypes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// Server settings for tests: short heartbeats and leases, quick retries.
pub fn fast_config(data_dir: &Path) -> ServerConfig {
    let mut config = ServerConfig::new(data_dir);
    config.bind = "127.0.0.1:0".parse().expect("address");
    config.heartbeat_interval = Duration::from_millis(200);
    config.lease_ttl = Duration::from_secs(3);
    config.retry_backoff = Duration::from_millis(50);
    config.retry_avoid = Duration::from_secs(5);
    config.placement_interval = Duration::from_millis(100);
    config.max_claim_wait = Duration::from_secs(5);
    config
}

/// A running server with its bootstrap tokens.
pub struct TestServer {
    /// The server.
    pub server: Server,
    /// Its base URL.
    pub url: String,
    /// Admin token of tenant `default`.
    pub admin: String,
    /// A worker token.
    pub worker_token: String,
    /// The database (kept alive with the server).
    pub db: TestDb,
    /// Its configuration, for a restart.
    config: ServerConfig,
}

impl TestServer {
    /// A server on a fresh `db` with [`fast_config`], adjusted by
    /// `configure`, with the echo plugin installed.
    pub async fn start(db: Db, configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let db = TestDb::new(db).await;
        let mut config = fast_config(db.dir.path());
        config.database_url = Some(db.url.clone());
        configure(&mut config);
        let server = Server::start(config.clone()).await.expect("server starts");
        let tokens = server.bootstrap_tokens().expect("fresh database").clone();
        let url = server.url();
        let test = Self {
            server,
            url,
            admin: tokens.admin,
            worker_token: tokens.worker,
            db,
            config,
        };
        test.install("echo", crate::components::ECHO).await;
        test
    }

    /// Another server on this one's database (PostgreSQL: servers scale out
    /// so), with [`fast_config`] adjusted by `configure`, and its data
    /// directory, which must live as long as it does.
    pub async fn another_server(
        &self,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> (Server, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("a data directory");
        let mut config = fast_config(dir.path());
        config.database_url = Some(self.db.url.clone());
        configure(&mut config);
        let server = Server::start(config)
            .await
            .expect("another server on the database starts");
        (server, dir)
    }

    /// Stops the server and starts it again on the same database and
    /// address; workers keep running and reconnect.
    pub async fn restart(self) -> Self {
        self.restart_after(Duration::ZERO).await
    }

    /// [`TestServer::restart`], with the server down for `downtime`.
    pub async fn restart_after(self, downtime: Duration) -> Self {
        let mut config = self.config.clone();
        config.bind = self.server.addr();
        self.server.shutdown().await;
        tokio::time::sleep(downtime).await;
        let server = Server::start(config.clone())
            .await
            .expect("server starts again");
        Self {
            server,
            config,
            ..self
        }
    }

    /// What `/metrics` answers.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.url))
            .await
            .expect("/metrics answers")
            .text()
            .await
            .expect("/metrics reads")
    }

    /// The value of one sample of `/metrics`, named with its labels as the
    /// text format prints them (`flowmesh_completions_total{verdict="accepted"}`);
    /// 0 when the server has not printed it yet.
    pub async fn metric(&self, sample: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .map_or(0.0, |value| value.trim().parse().expect("a number"))
    }

    /// Installs a plugin through the API; it must be accepted.
    pub async fn install(&self, name: &str, path: &str) {
        let (status, body) = self.try_install(name, path).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Asks the API to install the component at `path` as `name`: the
    /// status and the JSON answer.
    pub async fn try_install(&self, name: &str, path: &str) -> (StatusCode, Value) {
        let bytes = std::fs::read(path).expect("component built");
        let admin = self.admin();
        Api::send(
            admin
                .request(reqwest::Method::POST, &format!("/plugins?name={name}"))
                .body(bytes),
        )
        .await
    }

    /// Registers a worker named `name` by hand with `token`, speaking the
    /// protocol as a worker does: it reports the installed plugin `plugin`
    /// (its digest, as the server has it) as available, so it is routed that
    /// plugin's task types. The registration id.
    pub async fn register_by_hand(&self, token: &str, name: &str, plugin: &str) -> String {
        let (status, installed) = self.admin().get(&format!("/plugins/{plugin}")).await;
        assert_eq!(status, StatusCode::OK, "{installed}");
        let registration = json!({
            "name": name,
            "capabilities": {
                "supportedTaskTypes": [],
                "plugins": [{
                    "name": plugin,
                    "digest": installed["digest"],
                    "status": "available",
                    "imports": [],
                }],
                "capabilities": [],
            },
            "hardware": {"cpus": 2.0, "memoryBytes": 1_u64 << 30},
            "slots": 1,
            "version": "test",
        });
        let (status, registered) = self.api(token).post("/worker/register", registration).await;
        assert_eq!(status, StatusCode::OK, "{registered}");
        registered["workerId"]
            .as_str()
            .expect("a registration id")
            .to_string()
    }

    /// A worker token of `tenant`: bound to it, or `shared` (an operator's,
    /// for workers that run every tenant's tasks that allow them).
    pub async fn worker_token(&self, tenant: &str, shared: bool) -> String {
        let (status, body) = self
            .admin()
            .post(
                "/tokens",
                json!({"tenant": tenant, "role": "worker", "shared": shared}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// A client with `token` that trusts the server's own CA, if it made
    /// one (`Tls::SelfSigned`).
    pub fn api(&self, token: &str) -> Api {
        match self.server.ca_cert() {
            None => Api::new(&self.url, token),
            Some(ca) => Api::with_client(
                &self.url,
                token,
                flowmesh_tls::client_builder(Some(ca))
                    .expect("the CA reads")
                    .build()
                    .expect("client"),
            ),
        }
    }

    /// A client with the admin token.
    pub fn admin(&self) -> Api {
        self.api(&self.admin)
    }

    /// A client for a new user token of `tenant`.
    pub async fn user(&self, tenant: &str) -> Api {
        let (status, body) = self
            .admin()
            .post("/tokens", json!({"tenant": tenant, "role": "user"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        self.api(body["token"].as_str().expect("token"))
    }

    /// A worker named `name` with `plugins` (name, component path),
    /// `capabilities`, and `slots`.
    pub async fn worker(
        &self,
        name: &str,
        plugins: &[(&str, &str)],
        capabilities: HostCapabilities,
        slots: u32,
    ) -> TestWorker {
        self.worker_with(name, plugins, capabilities, slots, |_| {})
            .await
    }

    /// A worker that finds its capabilities with `probes`, before it
    /// registers and again every 200 ms.
    pub async fn probed_worker(
        &self,
        name: &str,
        plugins: &[(&str, &str)],
        probes: Vec<std::sync::Arc<dyn flowmesh_runtime::Probe>>,
        slots: u32,
    ) -> TestWorker {
        self.worker_with(name, plugins, HostCapabilities::none(), slots, |config| {
            config.probes = probes;
            config.probe_interval = Duration::from_millis(200);
        })
        .await
    }

    /// A worker as [`TestServer::worker`] makes it, its configuration
    /// adjusted by `configure`.
    pub async fn worker_with(
        &self,
        name: &str,
        plugins: &[(&str, &str)],
        capabilities: HostCapabilities,
        slots: u32,
        configure: impl FnOnce(&mut WorkerConfig),
    ) -> TestWorker {
        let ca = self.server.ca_cert().map(Path::to_path_buf);
        TestWorker::start(
            &self.url,
            &self.worker_token,
            name,
            plugins,
            capabilities,
            slots,
            |config| {
                config.ca_cert = ca;
                configure(config);
            },
        )
        .await
    }

    /// An echo worker with `slots`.
    pub async fn echo_worker(&self, name: &str, slots: u32) -> TestWorker {
        self.worker(
            name,
            &[("echo", crate::components::ECHO)],
            HostCapabilities::none(),
            slots,
        )
        .await
    }
}

/// A running worker.
pub struct TestWorker {
    /// The worker; `None` once stopped.
    pub worker: Option<Worker>,
    /// Its runtime.
    pub runtime: TestRuntime,
}

impl TestWorker {
    /// Starts a worker against `url`, its configuration adjusted by
    /// `configure`.
    pub async fn start(
        url: &str,
        token: &str,
        name: &str,
        plugins: &[(&str, &str)],
        capabilities: HostCapabilities,
        slots: u32,
        configure: impl FnOnce(&mut WorkerConfig),
    ) -> Self {
        let runtime = TestRuntime::with(capabilities, |_| {});
        for (plugin, path) in plugins {
            runtime.load(plugin, path).await;
        }
        let mut config = WorkerConfig::new(url, token);
        config.name = name.to_string();
        config.slots = slots;
        config.claim_wait = Duration::from_secs(2);
        configure(&mut config);
        let worker = Worker::start(config, runtime.runtime.clone())
            .await
            .expect("worker registers");
        Self {
            worker: Some(worker),
            runtime,
        }
    }

    /// Stops it cleanly, handing running attempts back.
    pub async fn shutdown(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.shutdown(Duration::from_secs(10)).await;
        }
    }

    /// Stops it as a crash would: nothing more is reported.
    pub fn kill(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.kill();
        }
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A REST client with one token.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// The bearer token it sends.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A client for `base` with `token`.
    pub fn new(base: &str, token: &str) -> Self {
        flowmesh_tls::install_crypto_provider();
        Self {
            http: reqwest::Client::new(),
            base: format!("{base}/api/v1"),
            token: token.to_string(),
        }
    }

    async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// A client for `base` with `token` over `http` (one that trusts a
    /// server's own CA, say).
    pub fn with_client(base: &str, token: &str, http: reqwest::Client) -> Self {
        Self {
            http,
            base: format!("{base}/api/v1"),
            token: token.to_string(),
        }
    }

    /// A request to `method path`, with the token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Sends `request` (from [`Api::request`]) and reads its JSON answer.
    pub async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        Self::answer(request.send().await.expect("request")).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        Self::send(self.request(reqwest::Method::POST, path).json(&body)).await
    }

    /// `POST path` with `body` sent as it is, as JSON.
    pub async fn post_raw(&self, path: &str, body: &str) -> (StatusCode, Value) {
        Self::send(
            self.request(reqwest::Method::POST, path)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string()),
        )
        .await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        Self::send(self.request(reqwest::Method::GET, path)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        Self::send(self.request(reqwest::Method::DELETE, path)).await
    }

    /// `POST /tasks{query}` with a document.
    pub async fn submit_raw(&self, query: &str, document: &str) -> (StatusCode, Value) {
        Self::send(
            self.request(reqwest::Method::POST, &format!("/tasks{query}"))
                .body(document.to_string()),
        )
        .await
    }

    /// Submits a document that must be accepted; returns the task id.
    pub async fn submit(&self, document: &str) -> String {
        let (status, body) = self.submit_raw("", document).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_string()
    }

    /// Submits an echo task.
    pub async fn echo(&self, message: &str) -> String {
        self.submit(&echo_document(message)).await
    }

    /// `GET /tasks/{id}`, which must exist.
    pub async fn task(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/tasks/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Waits until task `id` is in a terminal state; returns it.
    pub async fn finished(&self, id: &str, within: Duration) -> Value {
        self.until(id, within, |task| {
            matches!(
                task["state"].as_str(),
                Some("succeeded" | "failed" | "cancelled")
            )
        })
        .await
    }

    /// Waits until task `id` satisfies `condition`; returns it.
    pub async fn until(
        &self,
        id: &str,
        within: Duration,
        condition: impl Fn(&Value) -> bool,
    ) -> Value {
        eventually(
            &format!("task {id} reaching the expected state"),
            within,
            || async {
                let task = self.task(id).await;
                if condition(&task) {
                    Ok(task)
                } else {
                    Err(format!("{task:#}"))
                }
            },
        )
        .await
    }

    /// The SSE stream of task `id`, read to its end: `(event, data)` pairs.
    pub async fn events(&self, id: &str, within: Duration) -> Vec<(String, Value)> {
        self.event_stream(&format!("/tasks/{id}/events"), within)
            .await
    }

    /// `GET /workflows/{id}`, which must exist.
    pub async fn workflow(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/workflows/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Waits until workflow `id` has finished; returns it.
    pub async fn workflow_finished(&self, id: &str, within: Duration) -> Value {
        eventually(&format!("workflow {id} finishing"), within, || async {
            let workflow = self.workflow(id).await;
            if workflow["state"] != "running" {
                Ok(workflow)
            } else {
                Err(format!("{workflow:#}"))
            }
        })
        .await
    }

    /// The SSE stream at `path`, read to its end: `(event, data)` pairs.
    pub async fn event_stream(&self, path: &str, within: Duration) -> Vec<(String, Value)> {
        use futures::StreamExt;
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::OK);
        let mut stream = response.bytes_stream();
        let mut text = String::new();
        tokio::time::timeout(within, async {
            while let Some(chunk) = stream.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk.expect("stream chunk")));
            }
        })
        .await
        .expect("the event stream ends after the result");
        parse_sse(&text)
    }
}

/// Parses server-sent events into `(event, data)` pairs.
pub fn parse_sse(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = Some(name.to_string());
                } else if let Some(payload) = line.strip_prefix("data: ") {
                    data.push_str(payload);
                }
            }
            Some((event?, serde_json::from_str(&data).ok()?))
        })
        .collect()
}

/// Each attempt of `task` (a `GET /tasks/{id}` answer) as (worker,
/// outcome), in order.
pub fn attempt_outcomes(task: &Value) -> Vec<(&str, &str)> {
    task["attempts"]
        .as_array()
        .map_or_else(Vec::new, |attempts| {
            attempts
                .iter()
                .map(|a| {
                    (
                        a["worker"].as_str().unwrap_or_default(),
                        a["outcome"].as_str().unwrap_or_default(),
                    )
                })
                .collect()
        })
}

/// A task document for the echo plugin.
pub fn echo_document(message: &str) -> String {
    format!(
        "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: echo\n  message: {message:?}\n"
    )
}

/// A task document for the echo plugin's sleep task type.
pub fn sleep_document(duration: &str) -> String {
    format!(
        "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: sleep\n  duration: {duration}\n"
    )
}
