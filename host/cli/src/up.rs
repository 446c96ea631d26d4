//! `flowmesh up`: a whole cluster in one process, for one machine.
//!
//! A server on SQLite in the data directory, the first-party plugins (built
//! into this binary) installed unless a plugin of the same name already is,
//! and a worker with one slot per CPU. The
//! admin token goes into the config file, so every other command finds this
//! server without flags. Ctrl-C stops the worker first, which hands its
//! running tasks back (they are `pending` again and run on the next `up`),
//! then the server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use flowmesh_runtime::{HostCapabilities, Runtime, RuntimeConfig};
use flowmesh_server::{Server, ServerConfig};
use flowmesh_types::api::Role;
use flowmesh_worker::{Worker, WorkerConfig};

use crate::error::CliResult;
use crate::host_capabilities::CapabilityArgs;
use crate::output;
use crate::settings::ConfigFile;

include!(concat!(env!("OUT_DIR"), "/first_party.rs"));

/// `flowmesh up` options.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:7380", env = "FLOWMESH_BIND")]
    bind: SocketAddr,
    /// Data directory: the SQLite database, tokens, compiled plugins, task
    /// scratch space.
    #[arg(long, env = "FLOWMESH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Tasks the local worker runs at once (default: one per CPU).
    #[arg(long)]
    slots: Option<u32>,
    /// Do not write the server and token to the config file.
    #[arg(long)]
    no_config: bool,
    #[command(flatten)]
    tls: crate::serve::TlsArgs,
    #[command(flatten)]
    capabilities: CapabilityArgs,
}

pub(crate) async fn run(args: UpArgs, config_path: &Path) -> CliResult {
    let data_dir = args.data_dir.unwrap_or_else(crate::default_data_dir);
    let mut config = ServerConfig::new(&data_dir);
    config.bind = args.bind;
    args.tls.apply(&mut config);
    let server = Server::start(config).await?;
    let ca_cert = server.ca_cert().map(Path::to_path_buf);
    let url = server.url();
    let mut installed = Vec::new();
    for (package, bytes) in FIRST_PARTY {
        match server.install_plugin_unless_named(bytes.to_vec()).await {
            Ok(record) => installed.push(format!("{} {}", record.name, record.version)),
            Err(error) => {
                eprintln!("warning: the first-party plugin {package} was not installed: {error:#}")
            }
        }
    }
    let admin = server.local_token("admin.token", Role::Admin).await?;
    let worker_token = server.local_token("worker.token", Role::Worker).await?;
    if !args.no_config {
        ConfigFile::load(config_path)?
            .save_target(config_path, &url, &admin, ca_cert.as_deref())
            .with_context(|| format!("writing the config file {}", config_path.display()))?;
    }

    // The server's artifact cache: a plugin is compiled once for both.
    let runtime = Arc::new(
        Runtime::new(
            RuntimeConfig::new(data_dir.join("cache"), data_dir.join("worker/scratch")),
            HostCapabilities::none(),
        )
        .context("starting the local worker's runtime")?,
    );
    let mut worker_config = WorkerConfig::new(&url, worker_token);
    worker_config.ca_cert = ca_cert.clone();
    worker_config.name = format!("{}-local", worker_config.name);
    if let Some(slots) = args.slots {
        worker_config.slots = slots.max(1);
    }
    worker_config.probes = args.capabilities.probes(&worker_config.name);
    if let Some(interval) = args.capabilities.probe_interval() {
        worker_config.probe_interval = interval;
    }
    let slots = worker_config.slots;
    let worker = Worker::start(worker_config, runtime)
        .await
        .context("starting the local worker")?;
    worker.plugins_synced().await;
    let capabilities = worker.capabilities();

    crate::outln!("FlowMesh is up");
    output::print_fields(&[
        ("api", format!("{url}/api/v1")),
        (
            "console",
            match data_dir.join("admin.token") {
                file if file.exists() => {
                    format!(
                        "{url}/ (sign in with the admin token in {})",
                        file.display()
                    )
                }
                _ => format!("{url}/ (sign in with an admin or user token)"),
            },
        ),
        (
            "tls",
            match &ca_cert {
                Some(ca) => format!(
                    "self-signed; the CA is {} (in the config file)",
                    ca.display()
                ),
                None if url.starts_with("https://") => "the operator's certificate".to_string(),
                None => "off (plain HTTP on loopback)".to_string(),
            },
        ),
        ("data", format!("{} (SQLite)", data_dir.display())),
        (
            "token",
            if args.no_config {
                format!("admin token in {}", data_dir.join("admin.token").display())
            } else {
                format!("admin token saved to {}", config_path.display())
            },
        ),
        ("plugins", output::list(&installed)),
        (
            "worker",
            format!(
                "{} ({slots} slots): {}",
                worker.name(),
                output::list(&capabilities.supported_task_types)
            ),
        ),
    ]);
    for plugin in capabilities
        .plugins
        .iter()
        .filter(|plugin| plugin.reason.is_some())
    {
        crate::outln!(
            "  plugin {} unavailable here: {}",
            plugin.name,
            plugin.reason.as_deref().unwrap_or_default()
        );
    }
    crate::outln!("try: flowmesh task submit examples/tasks/echo.yaml --wait");
    crate::outln!(
        "Ctrl-C stops; running tasks go back to pending and resume on the next `flowmesh up`"
    );

    crate::shutdown_signal().await;
    eprintln!("stopping: handing running tasks back");
    worker.shutdown(Duration::from_secs(10)).await;
    server.shutdown().await;
    eprintln!("stopped");
    Ok(())
}
