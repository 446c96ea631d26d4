//! The `flowmesh` command line: `server` runs the API and queue, `worker`
//! runs tasks for a server.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 usage error.

mod serve;
mod work;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// FlowMesh: run WebAssembly task plugins on a fleet of workers.
#[derive(Debug, Parser)]
#[command(name = "flowmesh", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "FLOWMESH_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: REST API, durable queue, dispatcher.
    Server(serve::ServerArgs),
    /// Run a worker that executes tasks for a server.
    Worker(work::WorkerArgs),
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => serve::run(args).await,
            Command::Worker(args) => work::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,wasmtime=warn,cranelift=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Waits for Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match terminate.as_mut() {
                    Some(signal) => { signal.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// The default data directory: `$FLOWMESH_HOME`, else
/// `$XDG_DATA_HOME/flowmesh`, else `~/.local/share/flowmesh`.
pub(crate) fn default_data_dir() -> std::path::PathBuf {
    if let Some(home) = std::env::var_os("FLOWMESH_HOME") {
        return home.into();
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME") {
        return std::path::PathBuf::from(data).join("flowmesh");
    }
    std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| ".".into())
        .join(".local/share/flowmesh")
}

/// Parses `key=value`.
pub(crate) fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .ok_or_else(|| format!("{text:?} is not key=value"))
}
