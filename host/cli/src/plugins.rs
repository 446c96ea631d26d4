//! `flowmesh plugin install | list | inspect | remove | new`.

use std::time::Duration;

use flowmesh_runtime::ComponentDigest;
use serde_json::Value;

use crate::client::ApiClient;
use crate::error::{CliError, CliResult};
use crate::output::{self, Output};
use crate::scaffold;
use crate::tasks::{encode, path_segment};

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
    /// Create a new plugin crate on the FlowMesh SDK.
    New(scaffold::NewArgs),
}

pub(crate) async fn run(
    command: PluginCommand,
    client: impl FnOnce() -> CliResult<ApiClient>,
    output: Output,
) -> CliResult {
    match command {
        PluginCommand::New(args) => scaffold::run(args),
        PluginCommand::Install {
            source,
            name,
            sha256,
        } => install(&client()?, output, &source, name, sha256).await,
        PluginCommand::List => {
            let plugins: Vec<Value> = client()?.get("/plugins").await?;
            match output {
                Output::Json => output::print_json(&plugins),
                Output::Table => {
                    let mut table =
                        output::table(&["name", "version", "task types", "capabilities", "digest"]);
                    for plugin in &plugins {
                        table.add_row(vec![
                            text(&plugin["name"]),
                            text(&plugin["version"]),
                            output::list(task_types(plugin)),
                            output::list(capabilities(plugin)),
                            output::short_digest(&text(&plugin["digest"])),
                        ]);
                    }
                    output::print_table(&table);
                }
            }
            Ok(())
        }
        PluginCommand::Inspect { name } => {
            let plugin: Value = client()?
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
    let plugin: Value = client
        .post(&path, bytes, "application/wasm", Duration::from_secs(300))
        .await
        .map_err(|error| crate::tasks::in_file(source, error))?;
    match output {
        Output::Json => output::print_json(&plugin),
        Output::Table => {
            crate::outln!(
                "installed {} {} ({})",
                text(&plugin["name"]),
                text(&plugin["version"]),
                text(&plugin["digest"])
            );
            output::print_fields(&[
                ("task types", output::list(task_types(&plugin))),
                ("host interfaces", output::list(host_interfaces(&plugin))),
                ("needs", needs(&plugin)),
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

fn print_plugin(plugin: &Value) {
    output::print_fields(&[
        ("name", text(&plugin["name"])),
        ("version", text(&plugin["version"])),
        ("digest", text(&plugin["digest"])),
        ("installed", text(&plugin["installedAt"])),
        ("description", text(&plugin["manifest"]["description"])),
        ("host interfaces", output::list(host_interfaces(plugin))),
        ("needs", needs(plugin)),
    ]);
    for task_type in plugin["manifest"]["taskTypes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        crate::outln!();
        crate::outln!(
            "task type {}: {}",
            text(&task_type["name"]),
            text(&task_type["description"])
        );
        crate::outln!("spec schema:");
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&task_type["specSchema"]).unwrap_or_default()
        );
    }
    crate::outln!();
    let workers = plugin["workers"].as_array().cloned().unwrap_or_default();
    if workers.is_empty() {
        crate::outln!("no live worker");
        return;
    }
    let mut table = output::table(&["worker", "status", "reason"]);
    for worker in &workers {
        table.add_row(vec![
            text(&worker["name"]),
            text(&worker["status"]),
            worker["reason"].as_str().unwrap_or("-").to_string(),
        ]);
    }
    output::print_table(&table);
}

/// A JSON string, or `-`.
pub(crate) fn text(value: &Value) -> String {
    value.as_str().unwrap_or("-").to_string()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn task_types(plugin: &Value) -> Vec<String> {
    plugin["manifest"]["taskTypes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|task_type| task_type["name"].as_str())
        .map(str::to_string)
        .collect()
}

/// The FlowMesh host interfaces a plugin imports (WASI left out).
fn host_interfaces(plugin: &Value) -> Vec<String> {
    strings(&plugin["imports"])
        .into_iter()
        .filter(|import| import.starts_with("flowmesh:host/"))
        .collect()
}

/// What a worker needs to run a plugin, in words.
fn needs(plugin: &Value) -> String {
    let capabilities = capabilities(plugin);
    if capabilities.is_empty() {
        "no optional capability: every worker can run it".to_string()
    } else {
        format!("workers with {}", capabilities.join(" and "))
    }
}

/// The optional host capabilities a plugin imports (`containers`, `gpu`,
/// `llm`): what a worker must have for it to be available.
fn capabilities(plugin: &Value) -> Vec<String> {
    strings(&plugin["imports"])
        .iter()
        .filter_map(|import| flowmesh_types::CapabilityKind::from_interface(import))
        .map(|kind| kind.name().to_string())
        .collect()
}
