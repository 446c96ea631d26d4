//! The `flowmesh` command line.
//!
//! - Operators: `up` (a local cluster in one process), `server`, `worker`.
//! - Plugin authors and admins: `plugin install | list | inspect | remove | new | build`.
//! - Clients: `task submit | get | list | cancel | logs | watch`,
//!   `workflow get | list | cancel | watch`,
//!   `worker list | inspect`, `validate`.
//!
//! Client commands find their server and token through `--server` /
//! `FLOWMESH_SERVER`, `--token` / `FLOWMESH_TOKEN`, then the config file
//! ([`settings`]); read commands print tables or, with `--output json`, the
//! API's JSON. Exit codes are listed in [`error`].
//!
//! Each command has its module (`tasks`, `submit`, `workflows`, `workers`,
//! `plugins`, `validate`, `up`, `serve`, `work`); what several of them share
//! sits below them, never in a sibling command's module: [`client`] (the
//! HTTP client), [`output`] (printing), `requests` (ids in paths, list
//! queries, cancelling by id), `input` (reading the given files), `watch`
//! (following a task to its end). `task submit` lives in `submit`, which
//! uses `watch` and `workflows` to follow what it submitted; `tasks` only
//! dispatches to it.

pub mod client;
pub mod error;
mod host_capabilities;
mod input;
pub mod output;
mod plugin_build;
mod plugins;
mod requests;
mod scaffold;
mod serve;
pub mod settings;
mod submit;
mod submit_batch;
mod tasks;
mod tokens;
mod up;
mod validate;
mod watch;
mod work;
mod workers;
mod workflows;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::client::ApiClient;
use crate::error::{CliError, CliResult};
use crate::output::Output;
use crate::settings::{ConfigFile, Target};

/// FlowMesh: run WebAssembly task plugins on a fleet of workers.
#[derive(Debug, Parser)]
#[command(name = "flowmesh", version, about, propagate_version = true)]
pub struct Cli {
    /// The server's URL [default: from the config file, else http://127.0.0.1:7380].
    #[arg(long, global = true, env = "FLOWMESH_SERVER", value_name = "URL")]
    server: Option<String>,
    /// Bearer token [default: from the config file].
    #[arg(long, global = true, env = "FLOWMESH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A CA certificate (PEM) to trust for an https:// server, besides the
    /// system's [default: the config file's ca_cert].
    #[arg(long, global = true, env = "FLOWMESH_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// How read commands print.
    #[arg(
        long,
        short,
        global = true,
        value_enum,
        default_value = "table",
        env = "FLOWMESH_OUTPUT"
    )]
    output: Output,
    /// The config file [default: $XDG_CONFIG_HOME/flowmesh/config.toml].
    #[arg(long, global = true, env = "FLOWMESH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format of `up`, `server` and `worker`.
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
    /// Start a local cluster: a server on SQLite, the first-party plugins, and
    /// a worker, all in this process.
    Up(up::UpArgs),
    /// Run the server: REST API, durable queue, dispatcher.
    Server(serve::ServerArgs),
    /// Run a worker (no subcommand), or read the fleet (`list`, `inspect`).
    Worker {
        #[command(subcommand)]
        query: Option<workers::WorkerQuery>,
        #[command(flatten)]
        run: work::WorkerArgs,
    },
    /// Install, list, inspect, remove and create plugins.
    #[command(subcommand)]
    Plugin(plugins::PluginCommand),
    /// Submit, read, follow and cancel tasks (and submit workflows).
    #[command(subcommand)]
    Task(tasks::TaskCommand),
    /// Read, follow and cancel workflows.
    #[command(subcommand)]
    Workflow(workflows::WorkflowCommand),
    /// Create, list and revoke API tokens (admin).
    #[command(subcommand)]
    Token(tokens::TokenCommand),
    /// Check task and workflow documents: the envelope and graph offline,
    /// plugin schemas and validate() with a server.
    Validate(validate::ValidateArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    flowmesh_tls::install_crypto_provider();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(6);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            error.exit_code()
        }
    }
}

async fn run(cli: Cli) -> CliResult {
    let config_path = cli.config.clone().unwrap_or_else(settings::config_path);
    let output = cli.output;
    let client = || -> CliResult<ApiClient> {
        let config = ConfigFile::load(&config_path)?;
        ApiClient::new(Target::resolve_with_ca(
            cli.server.clone(),
            cli.token.clone(),
            cli.ca_cert.clone(),
            &config,
        )?)
    };
    match cli.command {
        Command::Up(args) => {
            init_tracing(cli.log_format);
            up::run(args, &config_path).await
        }
        Command::Server(args) => {
            init_tracing(cli.log_format);
            Ok(serve::run(args).await?)
        }
        Command::Worker {
            query: Some(query),
            run,
        } => {
            if !run.is_empty() {
                return Err(CliError::usage(
                    "the worker options (--slots, --label, --plugin, …) run a worker; `worker list` and `worker inspect` take none",
                ));
            }
            workers::run(query, client()?, output).await
        }
        Command::Worker { query: None, run } => {
            init_tracing(cli.log_format);
            // The config file's token is a client's, not a worker's.
            let config = ConfigFile::load(&config_path)?;
            let target =
                Target::resolve_with_ca(cli.server.clone(), None, cli.ca_cert.clone(), &config)?;
            work::run(run, target.server, cli.token.clone(), target.ca_cert).await
        }
        Command::Plugin(command) => plugins::run(command, client, output).await,
        Command::Task(command) => tasks::run(command, client()?, output).await,
        Command::Workflow(command) => workflows::run(command, client()?, output).await,
        Command::Token(command) => tokens::run(command, client()?, output).await,
        Command::Validate(args) => {
            let config = ConfigFile::load(&config_path)?;
            let target = Target::resolve_with_ca(
                cli.server.clone(),
                cli.token.clone(),
                cli.ca_cert.clone(),
                &config,
            )?;
            let client = if target.named {
                Some(ApiClient::new(target)?)
            } else {
                None
            };
            validate::run(args, client, output).await
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "flowmesh", &mut script);
            outln!("{}", String::from_utf8_lossy(&script).trim_end());
            Ok(())
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,wasmtime=warn,cranelift=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
pub(crate) fn default_data_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("FLOWMESH_HOME") {
        return home.into();
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(data).join("flowmesh");
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| ".".into())
        .join(".local/share/flowmesh")
}

/// Parses `key=value`.
pub(crate) fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .ok_or_else(|| format!("{text:?} is not key=value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn worker_runs_without_a_subcommand_and_reads_with_one() {
        let run = Cli::try_parse_from(["flowmesh", "worker", "--slots", "2"]).expect("parses");
        assert!(matches!(run.command, Command::Worker { query: None, .. }));
        let list =
            Cli::try_parse_from(["flowmesh", "worker", "list", "-o", "json"]).expect("parses");
        assert!(matches!(
            list.command,
            Command::Worker {
                query: Some(workers::WorkerQuery::List),
                ..
            }
        ));
        assert_eq!(list.output, Output::Json);
        // Global flags may come before the subcommand.
        let inspect = Cli::try_parse_from([
            "flowmesh",
            "worker",
            "--server",
            "http://h:1",
            "-o",
            "json",
            "inspect",
            "w1",
        ])
        .expect("parses");
        assert!(matches!(
            inspect.command,
            Command::Worker {
                query: Some(workers::WorkerQuery::Inspect { .. }),
                ..
            }
        ));
    }

    #[test]
    fn ids_that_would_change_the_url_are_refused() {
        for bad in ["", ".", "..", "a/b", "a?b", "a b"] {
            assert!(requests::path_segment(bad).is_err(), "{bad:?}");
        }
        assert!(requests::path_segment("01a2-x_y.z").is_ok());
    }
}
