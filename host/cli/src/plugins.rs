//! `flowmesh plugin install | list | inspect | remove | new | build`.

use std::time::Duration;

use flowmesh_runtime::ComponentDigest;
use flowmesh_types::PluginReport;
use flowmesh_types::api::PluginView;

use crate::client::ApiClient;
use crate::error::{CliError, CliResult};
use crate::input::in_file;
use crate::output::{self, Output};
use crate::requests::{encode, path_segment};
use crate::scaffold;

/// Plugin commands.
#[derive(Debug, clap::Subcommand)]
pub enum PluginCommand {
    /// Install a plugin component on the server (admin token); workers
    /// fetch it and start serving its task types within one heartbeat.
    Install {
        /// A component file, or an http:// URL to download it from.
        #[arg(value_name = "FILE|URL")]
        source: String,
        /// Install under this name instead of the one its manifest gives.
        #[arg(long)]
        name: Option<String>,
        /// The component's expected sha256 (hex): refused when the bytes differ.
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
    },
    /// List installed plugins.
    List,
    /// Show a plugin: task types with their JSON Schemas, required host
    /// capabilities, and which workers run it (or why they cannot).
    Inspect {
        /// Plugin name.
        name: String,
    },
    /// Remove a plugin (admin token); workers withdraw its task types.
    Remove {
        /// Plugin name.
        name: String,
    },
    /// Create a new plugin on the FlowMesh SDK: a Rust crate, or with
    /// `--lang python` a Python module.
    New(scaffold::NewArgs),
    /// Build the plugin in a folder (Rust or Python) into an installable
    /// component and print its path.
    Build(crate::plugin_build::BuildArgs),
}

pub(crate) async fn run(
    command: PluginCommand,
    client: impl FnOnce() -> CliResult<ApiClient>,
    output: Output,
) -> CliResult {
    match command {
        PluginCommand::New(args) => scaffold::run(args),
        PluginCommand::Build(args) => crate::plugin_build::run(args),
        PluginCommand::Install {
            source,
            name,
            sha256,
        } => install(&client()?, output, &source, name, sha256).await,
        PluginCommand::List => {
            let plugins: Vec<PluginView> = client()?.get("/plugins").await?;
            match output {
                Output::Json => output::print_json(&plugins),
                Output::Table => {
                    let mut table =
                        output::table(&["name", "version", "task types", "capabilities", "digest"]);
                    for plugin in &plugins {
                        let report = &plugin.report;
                        table.add_row(vec![
                            report.name.clone(),
                            version(report),
                            output::list(task_types(report)),
                            output::list(capabilities(report)),
                            output::short_digest(&report.digest),
                        ]);
                    }
                    output::print_table(&table);
                }
            }
            Ok(())
        }
        PluginCommand::Inspect { name } => {
            let plugin: PluginView = client()?
                .get(&format!("/plugins/{}", path_segment(&name)?))
                .await?;
            match output {
                Output::Json => output::print_json(&plugin),
                Output::Table => print_plugin(&plugin),
            }
            Ok(())
        }
        PluginCommand::Remove { name } => {
            client()?
                .delete(&format!("/plugins/{}", path_segment(&name)?))
                .await?;
            match output {
                Output::Json => output::print_json(&serde_json::json!({"removed": name})),
                Output::Table => crate::outln!(
                    "removed plugin {name}; workers withdraw its task types on their next heartbeat"
                ),
            }
            Ok(())
        }
    }
}

async fn install(
    client: &ApiClient,
    output: Output,
    source: &str,
    name: Option<String>,
    sha256: Option<String>,
) -> CliResult {
    let expected = sha256
        .map(|text| {
            ComponentDigest::parse(&text).ok_or_else(|| {
                CliError::usage(format!("--sha256 {text:?} must be 64 hexadecimal digits"))
            })
        })
        .transpose()?;
    let bytes = if source.starts_with("https://") {
        return Err(CliError::usage(format!(
            "{source}: https:// downloads are not supported yet; download it yourself and install the file (with --sha256)"
        )));
    } else if source.starts_with("http://") {
        download(source).await?
    } else {
        std::fs::read(source)
            .map_err(|error| CliError::usage(format!("cannot read {source}: {error}")))?
    };
    if let Some(expected) = &expected {
        let actual = ComponentDigest::of(&bytes);
        if &actual != expected {
            return Err(CliError::Api {
                status: 422,
                code: "digest_mismatch".into(),
                message: format!(
                    "{source} has sha256 {}, not the expected {}; nothing was installed",
                    actual.hex(),
                    expected.hex()
                ),
                details: Vec::new(),
                hint: Some("check the URL and the published checksum".into()),
            });
        }
    }
    let mut query = Vec::new();
    if let Some(name) = &name {
        query.push(format!("name={}", encode(name)));
    }
    if let Some(expected) = &expected {
        query.push(format!("sha256={}", expected.hex()));
    }
    let path = if query.is_empty() {
        "/plugins".to_string()
    } else {
        format!("/plugins?{}", query.join("&"))
    };
    let plugin: PluginView = client
        .post(&path, bytes, "application/wasm", Duration::from_secs(300))
        .await
        .map_err(|error| in_file(source, error))?;
    match output {
        Output::Json => output::print_json(&plugin),
        Output::Table => {
            let report = &plugin.report;
            crate::outln!(
                "installed {} {} ({})",
                report.name,
                version(report),
                report.digest
            );
            output::print_fields(&[
                ("task types", output::list(task_types(report))),
                ("host interfaces", output::list(host_interfaces(report))),
                ("needs", needs(report)),
            ]);
            crate::outln!("workers start serving it within one heartbeat");
        }
    }
    Ok(())
}

/// GETs a component from `url`.
async fn download(url: &str) -> CliResult<Vec<u8>> {
    let failed = |error: String| CliError::Unreachable {
        server: url.to_string(),
        error,
    };
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .map_err(|error| failed(error.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(format!("HTTP {}", response.status())));
    }
    Ok(response
        .bytes()
        .await
        .map_err(|error| failed(error.to_string()))?
        .to_vec())
}

fn print_plugin(plugin: &PluginView) {
    let report = &plugin.report;
    let manifest = report.manifest.as_ref();
    output::print_fields(&[
        ("name", report.name.clone()),
        ("version", version(report)),
        ("digest", report.digest.clone()),
        (
            "installed",
            plugin.installed_at.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "description",
            manifest.map_or_else(|| "-".into(), |m| m.description.clone()),
        ),
        ("host interfaces", output::list(host_interfaces(report))),
        ("needs", needs(report)),
    ]);
    for task_type in manifest.iter().flat_map(|m| &m.task_types) {
        crate::outln!();
        crate::outln!("task type {}: {}", task_type.name, task_type.description);
        crate::outln!("spec schema:");
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&task_type.spec_schema).unwrap_or_default()
        );
    }
    crate::outln!();
    if plugin.workers.is_empty() {
        crate::outln!("no live worker");
        return;
    }
    let mut table = output::table(&["worker", "status", "reason"]);
    for worker in &plugin.workers {
        table.add_row(vec![
            worker.name.clone(),
            worker.status.as_str().to_string(),
            worker.reason.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    output::print_table(&table);
}

fn version(report: &PluginReport) -> String {
    report.version.clone().unwrap_or_else(|| "-".into())
}

fn task_types(report: &PluginReport) -> Vec<String> {
    report
        .manifest
        .iter()
        .flat_map(|manifest| manifest.task_types.iter().map(|t| t.name.clone()))
        .collect()
}

/// The FlowMesh host interfaces a plugin imports (WASI left out).
fn host_interfaces(report: &PluginReport) -> Vec<String> {
    report
        .imports
        .iter()
        .filter(|import| import.starts_with("flowmesh:host/"))
        .cloned()
        .collect()
}

/// What a worker needs to run a plugin, in words.
fn needs(report: &PluginReport) -> String {
    let capabilities = capabilities(report);
    if capabilities.is_empty() {
        "no optional capability: every worker can run it".to_string()
    } else {
        format!("workers with {}", capabilities.join(" and "))
    }
}

/// The optional host capabilities a plugin imports (`containers`, `gpu`,
/// `llm`): what a worker must have for it to be available.
fn capabilities(report: &PluginReport) -> Vec<String> {
    report
        .imports
        .iter()
        .filter_map(|import| flowmesh_types::CapabilityKind::from_interface(import))
        .map(|kind| kind.name().to_string())
        .collect()
}
