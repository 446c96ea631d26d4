//! `flowmesh worker`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::error::{CliError, CliResult};
use flowmesh_runtime::{HostCapabilities, Runtime, RuntimeConfig};
use flowmesh_worker::{Worker, WorkerConfig};

use crate::host_capabilities::CapabilityArgs;

/// `flowmesh worker` options (the server and token come from the global
/// `--server` and `--token`, or `--token-file`).
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// A file holding the worker token (instead of --token).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The worker's name (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// Tasks run at once (default: one per CPU; at most 65,536).
    #[arg(long)]
    slots: Option<u32>,
    /// The most tasks claimed ahead of the slots, to start as slots free without a round trip to the server (default: a quarter of the slots; at most eight times the slots). Within it the worker holds what its slots finish during one round trip.
    #[arg(long)]
    read_ahead: Option<u32>,
    /// A label, key=value (repeatable).
    #[arg(long = "label", value_parser = crate::parse_label)]
    labels: Vec<(String, String)>,
    /// A plugin component to load besides the ones the server installs
    /// (repeatable), under the name its manifest gives.
    #[arg(long = "plugin", value_name = "FILE")]
    plugins: Vec<PathBuf>,
    /// Data directory (compiled plugins, task scratch space).
    #[arg(long, env = "FLOWMESH_WORKER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    capabilities: CapabilityArgs,
}

impl WorkerArgs {
    /// Whether no option was given.
    pub(crate) fn is_empty(&self) -> bool {
        self.token_file.is_none()
            && self.name.is_none()
            && self.slots.is_none()
            && self.read_ahead.is_none()
            && self.labels.is_empty()
            && self.plugins.is_empty()
            && self.data_dir.is_none()
            && self.capabilities.is_empty()
    }
}

/// Runs a worker until Ctrl-C. The token is `--token-file`'s, else
/// `--token` / `FLOWMESH_TOKEN`.
pub(crate) async fn run(
    args: WorkerArgs,
    server: String,
    token: Option<String>,
    ca_cert: Option<PathBuf>,
) -> CliResult {
    let token = match (args.token_file, token) {
        (Some(path), _) => std::fs::read_to_string(&path)
            .map_err(|error| {
                CliError::usage(format!(
                    "cannot read the token file {}: {error}",
                    path.display()
                ))
            })?
            .trim()
            .to_string(),
        (None, Some(token)) => token,
        (None, None) => {
            return Err(CliError::usage(
                "a worker token is needed: pass --token-file or --token, or set FLOWMESH_TOKEN (the server wrote one to worker.token in its data directory)",
            ));
        }
    };
    if args.slots == Some(0) {
        return Err(CliError::usage("--slots must be at least 1"));
    }
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| crate::default_data_dir().join("worker"));
    let runtime = Arc::new(
        Runtime::new(
            RuntimeConfig::new(data_dir.join("cache"), data_dir.join("scratch")),
            HostCapabilities::none(),
        )
        .context("starting the worker's runtime")?,
    );
    for path in &args.plugins {
        let bytes = std::fs::read(path)
            .map_err(|error| CliError::usage(format!("cannot read {}: {error}", path.display())))?;
        let prepared = runtime
            .prepare_plugin(bytes)
            .await
            .with_context(|| format!("loading the plugin {}", path.display()))?;
        // Installed under the name its manifest gives, as the server would;
        // a component that cannot run here is recorded under its file name.
        let name = match prepared.manifest() {
            Ok(manifest) => manifest.name.clone(),
            Err(_) => path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .map(|stem| stem.to_lowercase().replace(['.', '_'], "-"))
                .with_context(|| format!("{} has no usable file name", path.display()))?,
        };
        let report = runtime
            .install_prepared(&name, prepared)
            .with_context(|| format!("loading the plugin {}", path.display()))?;
        eprintln!(
            "plugin {name}: {:?}{}",
            report.status,
            report.reason.map(|r| format!(" ({r})")).unwrap_or_default()
        );
    }
    let mut config = WorkerConfig::new(server, token);
    config.ca_cert = ca_cert;
    if let Some(name) = args.name {
        config.name = name;
    }
    if let Some(slots) = args.slots {
        config.slots = slots.max(1);
    }
    config.read_ahead = args.read_ahead;
    config.labels = args.labels.into_iter().collect();
    config.probes = args.capabilities.probes(&config.name);
    if let Some(interval) = args.capabilities.probe_interval() {
        config.probe_interval = interval;
    }
    let worker = Worker::start(config, runtime)
        .await
        .context("registering with the server")?;
    eprintln!("worker {} running", worker.name());
    crate::shutdown_signal().await;
    eprintln!("shutting down: interrupting running tasks, they go back to pending");
    worker.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
