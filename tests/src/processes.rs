//! FlowMesh as operators run it, for tests of crashes: `flowmesh server` and
//! `flowmesh worker` as child processes of the binary a test names, killed
//! with SIGKILL, frozen with SIGSTOP and thawed with SIGCONT, and started
//! again on the same data.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cluster::Api;

/// How long a process may take to come up.
const START: Duration = Duration::from_secs(60);

/// A child process, killed and reaped when dropped.
pub struct Process {
    child: Child,
}

impl Process {
    /// Starts `command`.
    pub fn spawn(mut command: Command) -> Self {
        let child = command.spawn().expect("the process starts");
        Self { child }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it with SIGKILL, as a crash or the OOM killer would, and reaps
    /// it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Freezes it (SIGSTOP): it holds its sockets and its state, and does
    /// nothing, as a host that hangs or is paused.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen process go on (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    /// Whether it is still running (it did not exit or crash by itself).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {}", self.pid());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.thaw_quietly();
        self.kill();
    }
}

impl Process {
    fn thaw_quietly(&self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// A `flowmesh server` process on a fixed port, its data directory and its
/// database: it can be killed and started again on the same three.
pub struct ServerProcess {
    binary: PathBuf,
    data_dir: PathBuf,
    database_url: String,
    port: u16,
    args: Vec<String>,
    process: Option<Process>,
    /// Its base URL.
    pub url: String,
}

impl ServerProcess {
    /// Starts `binary server` with `--data-dir data_dir`, `--database-url
    /// database_url` and `args`, its log appended to `server.log` in the
    /// data directory, and waits until it is healthy.
    pub async fn start(binary: &Path, data_dir: &Path, database_url: &str, args: &[&str]) -> Self {
        std::fs::create_dir_all(data_dir).expect("the data directory");
        let port = free_port();
        let mut server = Self {
            binary: binary.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            database_url: database_url.to_string(),
            port,
            args: args.iter().map(|arg| arg.to_string()).collect(),
            process: None,
            url: format!("http://127.0.0.1:{port}"),
        };
        server.start_again().await;
        server
    }

    /// Starts the process again (after [`ServerProcess::kill`]) on the same
    /// port, data directory and database, and waits until it is healthy.
    pub async fn start_again(&mut self) {
        assert!(self.process.is_none(), "the server is already running");
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("the server's log file");
        let mut command = Command::new(&self.binary);
        command
            .args(["server", "--bind", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--database-url", &self.database_url])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log);
        self.process = Some(Process::spawn(command));
        // Healthy, and this process: one that exited (its port taken, say)
        // fails here with its log, not after a minute of waiting.
        flowmesh_tls::install_crypto_provider();
        let deadline = tokio::time::Instant::now() + START;
        loop {
            assert!(
                self.running(),
                "the server exited at start:\n{}",
                self.log()
            );
            if let Ok(answer) = reqwest::get(format!("{}/healthz", self.url)).await
                && answer.status().is_success()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server never answered /healthz:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills it with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Whether it is still running: it did not exit or crash by itself.
    pub fn running(&mut self) -> bool {
        self.process.as_mut().is_some_and(Process::running)
    }

    /// A client with the bootstrap admin token.
    pub fn admin(&self) -> Api {
        let token = std::fs::read_to_string(self.data_dir.join("admin.token"))
            .expect("the server wrote admin.token");
        Api::new(&self.url, token.trim())
    }

    /// The file holding the bootstrap worker token.
    pub fn worker_token_file(&self) -> PathBuf {
        self.data_dir.join("worker.token")
    }

    /// What the server logged, over all its runs.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.join("server.log")
    }
}

/// Starts `binary worker` named `name` against `server` with `slots`, the
/// plugins at `plugins`, a data directory of its own under `dir`, and
/// `args`; its log goes to `worker-NAME.log` in `dir`.
pub fn worker_process(
    binary: &Path,
    server: &ServerProcess,
    dir: &Path,
    name: &str,
    slots: u32,
    plugins: &[&str],
    args: &[&str],
) -> Process {
    let log = std::fs::File::create(dir.join(format!("worker-{name}.log"))).expect("a log file");
    let mut command = Command::new(binary);
    command
        .args(["worker", "--server", &server.url, "--name", name])
        .args(["--slots", &slots.to_string()])
        .arg("--token-file")
        .arg(server.worker_token_file())
        .arg("--data-dir")
        .arg(dir.join(format!("worker-{name}")))
        .args(args)
        .stdout(Stdio::null())
        .stderr(log);
    for plugin in plugins {
        command.arg("--plugin").arg(plugin);
    }
    Process::spawn(command)
}
