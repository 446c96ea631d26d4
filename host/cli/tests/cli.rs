//! The `flowmesh` binary end to end, as a person types it: `up`, then the
//! plugin, task and worker commands against it, over real HTTP, with a
//! plugin created by `plugin new`, built by cargo, served from a local HTTP
//! server and installed by URL.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use flowmesh_tests::cluster::task_types;
use serde_json::Value;

const FLOWMESH: &str = env!("CARGO_BIN_EXE_flowmesh");
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
/// A Docker address where no daemon answers.
const NO_DOCKER: &str = "unix:///nonexistent/docker.sock";

/// A home for one test: data directory, config file, scratch files.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self) -> PathBuf {
        self.path().join("config/flowmesh.toml")
    }

    /// `flowmesh ARGS` in this home, with nothing from the caller's
    /// environment or config.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(FLOWMESH);
        command
            .args(args)
            .current_dir(self.path())
            .env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join("xdg-config"))
            .env("XDG_DATA_HOME", self.path().join("xdg-data"))
            .env("FLOWMESH_CONFIG", self.config())
            .env("FLOWMESH_HOME", self.path().join("data"))
            .env_remove("FLOWMESH_SERVER")
            .env_remove("FLOWMESH_TOKEN")
            .env_remove("FLOWMESH_OUTPUT")
            .env_remove("FLOWMESH_CA_CERT")
            .env_remove("FLOWMESH_COMPONENTIZE_PY")
            .env("RUST_LOG", "warn");
        command
    }

    /// Runs `flowmesh ARGS` to its end.
    fn run(&self, args: &[&str]) -> Run {
        let output = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .expect("flowmesh runs");
        Run::from(args, output)
    }

    /// Runs `flowmesh ARGS` to its end with `env` set on top of this home's.
    fn run_with_env(&self, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Run {
        let mut command = self.command(args);
        command.stdin(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        Run::from(args, command.output().expect("flowmesh runs"))
    }

    /// Runs `flowmesh ARGS` with `input` on its standard input.
    fn run_with_input(&self, args: &[&str], input: &str) -> Run {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("flowmesh runs");
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(input.as_bytes())
            .expect("write stdin");
        Run::from(args, child.wait_with_output().expect("flowmesh ends"))
    }

    /// `flowmesh ARGS`, which must succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(run.code, 0, "{run}");
        run.stdout
    }

    /// `flowmesh ARGS --output json`, which must succeed; the JSON.
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        let stdout = self.ok(&args);
        serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
    }

    /// Starts `flowmesh up` on a free port and waits until it is ready. Its
    /// worker looks for Docker where no daemon is, so that what it shows for
    /// a plugin that needs Docker does not depend on the machine.
    fn up(&self) -> Up {
        self.up_with(&[])
    }

    /// [`Home::up`] with more flags.
    fn up_with(&self, extra: &[&str]) -> Up {
        let mut args = vec![
            "up",
            "--bind",
            "127.0.0.1:0",
            "--slots",
            "2",
            "--docker-host",
            NO_DOCKER,
        ];
        args.extend_from_slice(extra);
        let mut child = self
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("flowmesh up starts");
        let stdout = child.stdout.take().expect("piped");
        let (lines, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut printed = Vec::new();
        loop {
            match received.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => {
                    let ready = line.starts_with("Ctrl-C");
                    printed.push(line);
                    if ready {
                        break;
                    }
                }
                Err(error) => panic!("flowmesh up did not get ready ({error}): {printed:#?}"),
            }
        }
        Up {
            child,
            printed: printed.join("\n"),
        }
    }
}

/// A finished command.
struct Run {
    args: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(args: &[&str], output: Output) -> Self {
        Self {
            args: args.join(" "),
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "flowmesh {} exited {}\n--- stdout\n{}\n--- stderr\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }
}

/// A running `flowmesh up`.
struct Up {
    child: Child,
    /// What it printed up to "ready".
    printed: String,
}

impl Up {
    /// Ctrl-C, then waits for a clean exit.
    fn interrupt(mut self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "flowmesh up exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "flowmesh up did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it holds.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The target directory of scaffolded crates: the workspace's, beside its own.
fn scaffold_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(WORKSPACE).join("target"))
        .join("plugin-scaffold")
}

/// The virtual environment with componentize-py and pytest that
/// `scripts/python.sh` prepares (from PyPI when missing).
fn python_venv() -> PathBuf {
    let output = Command::new(Path::new(WORKSPACE).join("scripts/python.sh"))
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/python.sh runs");
    assert!(output.status.success(), "scripts/python.sh failed");
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// Runs cargo in `dir` with a target directory of the workspace's own.
fn cargo(dir: &Path, args: &[&str]) {
    let target = scaffold_target();
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target);
    for variable in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(variable);
    }
    let status = command.status().expect("cargo runs");
    assert!(
        status.success(),
        "cargo {} failed in {}",
        args.join(" "),
        dir.display()
    );
}

/// Serves `bytes` at `http://127.0.0.1:PORT/greet.wasm` on a thread of its
/// own; returns the URL.
fn serve_file(bytes: Vec<u8>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/greet.wasm",
        listener.local_addr().expect("address")
    );
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            listener.set_nonblocking(true).expect("nonblocking");
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let app = axum::Router::new().route(
                "/greet.wasm",
                axum::routing::get(move || {
                    let bytes = bytes.clone();
                    async move { bytes }
                }),
            );
            let _ = axum::serve(listener, app).await;
        });
    });
    url
}

#[test]
fn a_plugin_from_new_to_result_through_a_local_cluster() {
    let home = Home::new();

    // plugin new → its own test → the component.
    let created = home.ok(&["plugin", "new", "greet", "--path", "greet"]);
    assert!(created.contains("flowmesh plugin build"), "{created}");
    let crate_dir = home.path().join("greet");
    cargo(&crate_dir, &["test", "--quiet"]);
    let target = scaffold_target();
    let built = home.run_with_env(
        &["plugin", "build", "greet"],
        &[("CARGO_TARGET_DIR", target.as_os_str())],
    );
    assert_eq!(built.code, 0, "{built}");
    let path = built.stdout.trim();
    assert!(
        path.ends_with("plugin-scaffold/wasm32-wasip2/release/greet.wasm"),
        "{built}"
    );
    let component = std::fs::read(path).expect("the component was built");

    // up: URL, token in the config file, the worker's task types.
    let up = home.up();
    assert!(up.printed.contains("FlowMesh is up"), "{}", up.printed);
    assert!(up.printed.contains("echo, sleep"), "{}", up.printed);
    let config = std::fs::read_to_string(home.config()).expect("up wrote the config file");
    assert!(config.contains("token = \"fm_"), "{config}");

    // Install by URL: a wrong checksum is refused (3), the right one works.
    let url = serve_file(component.clone());
    let refused = home.run(&["plugin", "install", &url, "--sha256", &"0".repeat(64)]);
    assert_eq!(refused.code, 3, "{refused}");
    assert!(
        refused.stderr.contains("nothing was installed"),
        "{refused}"
    );
    let installed = home.ok(&[
        "plugin",
        "install",
        &url,
        "--sha256",
        flowmesh_runtime::ComponentDigest::of(&component).hex(),
    ]);
    assert!(installed.contains("installed greet 0.1.0"), "{installed}");
    assert!(
        installed
            .lines()
            .any(|line| line.starts_with("task types:") && line.ends_with(" greet")),
        "{installed}"
    );

    // submit --wait: the worker picked the plugin up without a restart.
    let greeted = home.ok(&["task", "submit", "greet/examples/task.yaml", "--wait"]);
    assert!(greeted.contains("Hello, FlowMesh!"), "{greeted}");
    assert!(greeted.contains("succeeded"), "{greeted}");
    let echo_doc = Path::new(WORKSPACE).join("examples/tasks/echo.yaml");
    let echoed = home.json(&[
        "task",
        "submit",
        echo_doc.to_str().expect("utf-8"),
        "--wait",
    ]);
    assert_eq!(echoed["state"], "succeeded", "{echoed:#}");
    let echo_id = echoed["id"].as_str().expect("id").to_string();

    // A document on standard input.
    let piped = home.run_with_input(
        &["task", "submit", "-", "--wait"],
        "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: echo, message: piped}\n",
    );
    assert_eq!(piped.code, 0, "{piped}");
    assert!(piped.stdout.contains("\"piped\""), "{piped}");

    // task list --output json has them all, finished.
    let page = home.json(&["task", "list"]);
    let tasks = page["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 3, "{page:#}");
    assert!(
        tasks.iter().all(|task| task["state"] == "succeeded"),
        "{page:#}"
    );
    assert!(tasks.iter().any(|task| task["id"] == echo_id.as_str()));
    assert!(tasks.iter().any(|task| task["taskType"] == "greet"));

    // worker inspect shows the types, plugins, capabilities and hardware,
    // and why the first-party container plugin cannot run here.
    let workers = home.json(&["worker", "list"]);
    let name = workers[0]["name"].as_str().expect("a worker").to_string();
    let inspected = home.ok(&["worker", "inspect", &name]);
    for expected in [
        "echo, greet, sleep",
        "available",
        "containers",
        "absent",
        "slots:",
        &format!("cannot reach the Docker daemon at {NO_DOCKER}"),
    ] {
        assert!(inspected.contains(expected), "{expected}: {inspected}");
    }
    let as_json = home.json(&["worker", "inspect", &name]);
    let container = as_json["capabilities"]["plugins"]
        .as_array()
        .and_then(|plugins| plugins.iter().find(|plugin| plugin["name"] == "container"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(container["status"], "unavailable", "{as_json:#}");
    assert!(
        container["reason"].as_str().unwrap_or_default().contains(&format!(
            "imports flowmesh:host/containers@0.1.0, which this worker does not provide: no Docker capability: cannot reach the Docker daemon at {NO_DOCKER}"
        )),
        "{container:#}"
    );
    let plugin = home.ok(&["plugin", "inspect", "greet"]);
    for expected in ["task type greet", "\"excitement\"", &name, "available"] {
        assert!(plugin.contains(expected), "{expected}: {plugin}");
    }

    // A plugin that needs Docker: installed, but this worker cannot run it,
    // and both inspect commands say why; fail-fast refuses its tasks (3).
    home.ok(&[
        "plugin",
        "install",
        flowmesh_tests::components::guests::USES_CONTAINERS,
    ]);
    eventually("the worker reports the plugin", || {
        home.ok(&["worker", "inspect", &name])
            .contains("uses-containers")
    });
    let inspected = home.ok(&["worker", "inspect", &name]);
    assert!(inspected.contains("unavailable"), "{inspected}");
    assert!(
        inspected.contains("flowmesh:host/containers"),
        "{inspected}"
    );
    let plugin = home.ok(&["plugin", "inspect", "uses-containers"]);
    assert!(
        plugin.contains("needs:") && plugin.contains("containers"),
        "{plugin}"
    );
    assert!(plugin.contains("unavailable"), "{plugin}");
    std::fs::write(
        home.path().join("docker.yaml"),
        "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: uses-containers\n",
    )
    .expect("write");
    let refused = home.run(&["task", "submit", "docker.yaml", "--fail-fast"]);
    assert_eq!(refused.code, 3, "{refused}");
    assert!(
        refused
            .stderr
            .contains("no live worker advertises task type \"uses-containers\""),
        "{refused}"
    );
    assert!(refused.stderr.contains("flowmesh worker list"), "{refused}");

    // task cancel: a long sleep, cancelled while it runs; watch says so (1).
    let sleep_doc = home.path().join("long-sleep.yaml");
    std::fs::write(
        &sleep_doc,
        "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: sleep\n  duration: 5m\n",
    )
    .expect("write");
    let submitted = home.json(&["task", "submit", "long-sleep.yaml"]);
    let sleep_id = submitted["id"].as_str().expect("id").to_string();
    eventually("the sleep runs", || {
        home.json(&["task", "get", &sleep_id])["state"] == "running"
    });
    let cancelled = home.ok(&["task", "cancel", &sleep_id]);
    assert!(
        cancelled.contains(&format!("{sleep_id}: cancel")),
        "{cancelled}"
    );
    let watched = home.run(&["task", "watch", &sleep_id]);
    assert_eq!(watched.code, 1, "{watched}");

    // Errors: field paths as lines, never raw JSON; documented exit codes.
    let bad_doc = home.path().join("bad.yaml");
    std::fs::write(
        &bad_doc,
        "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: greet\n  name: ''\n  excitement: 99\n",
    )
    .expect("write");
    let rejected = home.run(&["task", "submit", "bad.yaml"]);
    assert_eq!(rejected.code, 3, "{rejected}");
    assert!(
        rejected.stderr.contains("  spec.name: must not be empty"),
        "{rejected}"
    );
    assert!(
        rejected
            .stderr
            .contains("  spec.excitement: must be at most 10"),
        "{rejected}"
    );
    assert!(!rejected.stderr.contains("{\""), "{rejected}");
    let validated = home.run(&["validate", "bad.yaml"]);
    assert_eq!(validated.code, 1, "{validated}");
    assert!(validated.stdout.contains("excitement"), "{validated}");
    assert_eq!(home.run(&["task", "get", "no-such-task"]).code, 4);
    assert_eq!(home.run(&["--token", "fm_wrong", "task", "list"]).code, 5);
    assert_eq!(home.run(&["task", "frobnicate"]).code, 2);

    // plugin remove: the worker withdraws the type without a restart.
    home.ok(&["plugin", "remove", "greet"]);
    eventually("the worker stops advertising greet", || {
        !task_types(&home.json(&["worker", "inspect", &name])).contains(&"greet".to_string())
    });
    assert_eq!(home.run(&["plugin", "inspect", "greet"]).code, 4);

    up.interrupt();
    let unreachable = home.run(&["task", "list"]);
    assert_eq!(unreachable.code, 6, "{unreachable}");
    assert!(unreachable.stderr.contains("flowmesh up"), "{unreachable}");
}

#[test]
fn ctrl_c_hands_running_tasks_back_and_the_next_up_runs_them() {
    let home = Home::new();
    let up = home.up();
    std::fs::write(
        home.path().join("sleep.yaml"),
        "apiVersion: flowmesh/v1\nkind: Task\nspec:\n  taskType: sleep\n  duration: 2s\n  maxAttempts: 1\n",
    )
    .expect("write");
    let id = home.json(&["task", "submit", "sleep.yaml"])["id"]
        .as_str()
        .expect("id")
        .to_string();
    eventually("the sleep runs", || {
        home.json(&["task", "get", &id])["state"] == "running"
    });
    up.interrupt();

    // Handed back: the next `up` runs it again, and the interrupted attempt
    // does not count against maxAttempts: 1.
    let up = home.up();
    let task = home.json(&["task", "watch", &id]);
    assert_eq!(task["state"], "succeeded", "{task:#}");
    let outcomes: Vec<&str> = task["attempts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|attempt| attempt["outcome"].as_str())
        .collect();
    assert_eq!(outcomes.last(), Some(&"succeeded"), "{task:#}");
    assert!(outcomes.contains(&"released"), "{task:#}");
    let logs = home.run(&["task", "logs", &id]);
    assert_eq!(logs.code, 0, "{logs}");
    assert!(logs.stdout.contains("sleeping for 2s"), "{logs}");
    assert!(logs.stderr.contains("» finished: succeeded"), "{logs}");
    up.interrupt();
}

#[test]
fn many_documents_go_in_batches_and_errors_name_the_file_and_document() {
    let home = Home::new();
    let up = home.up();
    // 5,000 small tasks in one file of multi-document YAML: an ordinary
    // submission, not a document over the size limit.
    let mut many = String::new();
    for n in 0..5000 {
        many.push_str(&format!(
            "---\napiVersion: flowmesh/v1\nkind: Task\nspec: {{taskType: echo, message: 'task {n}'}}\n"
        ));
    }
    let file = home.path().join("many.yaml");
    std::fs::write(&file, &many).expect("write");
    let submitted = home.json(&["task", "submit", file.to_str().expect("utf-8")]);
    let submitted = submitted.as_array().expect("one entry per document");
    assert_eq!(submitted.len(), 5000);
    let ids: std::collections::HashSet<_> = submitted
        .iter()
        .map(|entry| entry["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(ids.len(), 5000, "each document its own task");
    assert_eq!(submitted[4999]["from"], format!("{}[4999]", file.display()));

    // One bad document refuses its batch, named by file and index.
    let bad = home.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: echo, message: fine}\n---\napiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: echo, message: [not, text]}\n",
    )
    .expect("write");
    let refused = home.run(&["task", "submit", bad.to_str().expect("utf-8")]);
    assert_eq!(refused.code, 3, "{refused}");
    assert!(
        refused
            .stderr
            .contains(&format!("{}[1].spec.message", bad.display())),
        "{refused}"
    );

    // A stream of generated tasks, one JSON document per line.
    let lines: String = (0..300)
        .map(|n| {
            format!(
                "{{\"apiVersion\": \"flowmesh/v1\", \"kind\": \"Task\", \"spec\": {{\"taskType\": \"echo\", \"message\": \"line {n}\"}}}}\n"
            )
        })
        .collect();
    let streamed = home.run_with_input(
        &["task", "submit", "-", "--ndjson", "--output", "json"],
        &lines,
    );
    assert_eq!(streamed.code, 0, "{streamed}");
    let streamed: Value = serde_json::from_str(&streamed.stdout).expect("json");
    assert_eq!(streamed.as_array().map(Vec::len), Some(300));
    up.interrupt();
}

#[test]
fn workflows_are_submitted_followed_listed_and_cancelled() {
    let home = Home::new();
    let up = home.up();
    let pipeline = Path::new(WORKSPACE).join("examples/workflows/hello-pipeline.yaml");
    let pipeline = pipeline.to_str().expect("utf-8");
    let run = home.run(&["task", "submit", pipeline, "--wait"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stderr.contains("» report: running"), "{run}");
    assert!(
        run.stderr.contains("» workflow ") && run.stderr.contains(": succeeded"),
        "{run}"
    );
    assert!(
        run.stdout
            .contains("hello from FlowMesh, after a 500 ms pause (workflow hello-pipeline)"),
        "{run}"
    );

    let page = home.json(&["workflow", "list"]);
    let listed = &page["workflows"][0];
    assert_eq!(listed["state"], "succeeded", "{page:#}");
    assert_eq!(listed["stageStates"]["succeeded"], 3, "{page:#}");
    let id = listed["id"].as_str().expect("id").to_string();
    let shown = home.ok(&["workflow", "get", &id]);
    for stage in ["greet", "pause", "report"] {
        assert!(shown.contains(stage), "{shown}");
    }

    let long = home.run_with_input(
        &["task", "submit", "-", "--output", "json"],
        "apiVersion: flowmesh/v1
kind: Workflow
spec:
  stages:
    - {name: wait, spec: {taskType: sleep, duration: 60s}}
    - {name: then, spec: {taskType: echo, message: never}}
",
    );
    assert_eq!(long.code, 0, "{long}");
    let submitted: Value = serde_json::from_str(&long.stdout).expect("json");
    let long_id = submitted["id"].as_str().expect("id").to_string();
    let cancelled = home.ok(&["workflow", "cancel", &long_id]);
    assert!(cancelled.contains(&long_id), "{cancelled}");
    let watched = home.run(&["workflow", "watch", &long_id, "--timeout", "60s"]);
    assert_eq!(
        watched.code, 1,
        "a cancelled workflow did not succeed: {watched}"
    );
    assert!(watched.stdout.contains("cancelled"), "{watched}");
    let missing = home.run(&["workflow", "get", "nonesuch"]);
    assert_ne!(missing.code, 0, "{missing}");
    up.interrupt();
}

#[test]
fn up_with_a_self_signed_certificate_serves_https_that_the_cli_and_worker_trust() {
    let home = Home::new();
    let up = home.up_with(&["--tls-self-signed"]);
    assert!(up.printed.contains("https://127.0.0.1:"), "{}", up.printed);
    let config = std::fs::read_to_string(home.config()).expect("config written");
    assert!(config.contains("ca_cert"), "{config}");
    // No flags: the config file names the server, the token and the CA; the
    // local worker trusts the CA too, or the task would never run.
    let echo = Path::new(WORKSPACE).join("examples/tasks/echo.yaml");
    let run = home.run(&["task", "submit", echo.to_str().expect("utf-8"), "--wait"]);
    assert_eq!(run.code, 0, "{run}");
    // Without the CA, the certificate is refused, and the message says what
    // to do.
    let untrusting = home.path().join("untrusting.toml");
    let without_ca: String = config
        .lines()
        .filter(|line| !line.starts_with("ca_cert"))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(&untrusting, without_ca).expect("write");
    let refused = home.run(&[
        "--config",
        untrusting.to_str().expect("utf-8"),
        "task",
        "list",
    ]);
    assert_eq!(refused.code, 6, "{refused}");
    assert!(refused.stderr.contains("--ca-cert"), "{refused}");
    up.interrupt();
}

#[test]
fn a_server_on_a_public_address_refuses_plain_http() {
    let home = Home::new();
    let data = home.path().join("public");
    let data = data.to_str().expect("utf-8");
    let run = home.run(&["server", "--bind", "0.0.0.0:0", "--data-dir", data]);
    assert_ne!(run.code, 0, "{run}");
    assert!(
        run.stderr
            .contains("refusing to serve plain HTTP on 0.0.0.0")
            && run.stderr.contains("--tls-self-signed"),
        "{run}"
    );
}

#[test]
fn validate_works_offline_and_completions_print() {
    let home = Home::new();
    let mut files: Vec<String> = ["examples/tasks", "examples/workflows"]
        .iter()
        .flat_map(|dir| {
            std::fs::read_dir(Path::new(WORKSPACE).join(dir))
                .expect("examples")
                .filter_map(Result::ok)
                .map(|entry| entry.path().display().to_string())
        })
        .collect();
    files.sort();
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let verdicts = home.json(&args);
    assert_eq!(verdicts.as_array().map(Vec::len), Some(files.len()));
    assert!(
        verdicts
            .as_array()
            .into_iter()
            .flatten()
            .all(|v| v["valid"] == true && v["checked"] == "envelope"),
        "{verdicts:#}"
    );
    std::fs::write(
        home.path().join("bad.yaml"),
        "apiVersion: flowmesh/v9\nkind: Task\nspec: {}\n",
    )
    .expect("write");
    let bad = home.run(&["validate", "bad.yaml"]);
    assert_eq!(bad.code, 1, "{bad}");
    assert!(bad.stdout.contains("apiVersion"), "{bad}");
    assert!(bad.stdout.contains("spec.taskType"), "{bad}");
    let script = home.ok(&["completions", "bash"]);
    assert!(script.contains("flowmesh"), "{script}");
}

#[test]
fn a_python_plugin_from_new_to_result_through_a_local_cluster() {
    let home = Home::new();
    let venv = python_venv();

    // plugin new --lang python → its own tests as plain Python.
    let created = home.ok(&[
        "plugin", "new", "hello-py", "--lang", "python", "--path", "hello",
    ]);
    assert!(created.contains("flowmesh plugin build"), "{created}");
    let dir = home.path().join("hello");
    for file in [
        "app.py",
        "test_app.py",
        "wit/world.wit",
        "flowmesh_sdk/__init__.py",
        "requirements.txt",
    ] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    let pytest = Command::new(venv.join("bin/python"))
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .current_dir(&dir)
        .output()
        .expect("pytest runs");
    assert!(
        pytest.status.success(),
        "{}{}",
        String::from_utf8_lossy(&pytest.stdout),
        String::from_utf8_lossy(&pytest.stderr)
    );

    // Without componentize-py, build says how to install it (exit 2).
    let missing = home.run_with_env(
        &["plugin", "build", "hello"],
        &[("PATH", "/usr/bin:/bin".as_ref())],
    );
    assert_eq!(missing.code, 2, "{missing}");
    assert!(
        missing
            .stderr
            .contains(".venv/bin/pip install componentize-py==0.25.1"),
        "{missing}"
    );

    // plugin build → the component's path.
    let tool = venv.join("bin/componentize-py");
    let built = home.run_with_env(
        &["plugin", "build", "hello"],
        &[("FLOWMESH_COMPONENTIZE_PY", tool.as_os_str())],
    );
    assert_eq!(built.code, 0, "{built}");
    let component = built.stdout.trim().to_string();
    assert!(component.ends_with("hello/build/hello.wasm"), "{built}");

    // install → the example task succeeds on the local worker.
    let up = home.up();
    let installed = home.ok(&["plugin", "install", &component]);
    assert!(
        installed.contains("installed hello-py 0.1.0"),
        "{installed}"
    );
    let greeted = home.ok(&["task", "submit", "hello/examples/task.yaml", "--wait"]);
    assert!(greeted.contains("Hello, FlowMesh!"), "{greeted}");
    assert!(greeted.contains("succeeded"), "{greeted}");

    // Its validate() runs on the server at submit: a blank name is refused
    // with its path before anything is queued.
    let refused = home.run_with_input(
        &["task", "submit", "-"],
        "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: hello-py, name: '  '}\n",
    );
    assert_ne!(refused.code, 0, "{refused}");
    assert!(refused.stderr.contains("spec.name"), "{refused}");
    assert!(refused.stderr.contains("must not be blank"), "{refused}");
    up.interrupt();
}
