//! `flowmesh worker list | inspect`.

use flowmesh_types::api::WorkerView;
use flowmesh_types::{CapabilityStatus, PluginStatus};

use crate::client::ApiClient;
use crate::error::CliResult;
use crate::output::{self, Output};
use crate::requests::path_segment;

/// Reading the fleet.
#[derive(Debug, clap::Subcommand)]
pub enum WorkerQuery {
    /// List workers: live ones first.
    List,
    /// Show a worker: task types, unavailable plugins with reasons,
    /// capabilities, hardware, slots.
    Inspect {
        /// Worker name or registration id.
        worker: String,
    },
}

pub(crate) async fn run(query: WorkerQuery, client: ApiClient, output: Output) -> CliResult {
    match query {
        WorkerQuery::List => {
            let workers: Vec<WorkerView> = client.get("/workers").await?;
            match output {
                Output::Json => output::print_json(&workers),
                Output::Table => {
                    let mut table = output::table(&[
                        "name",
                        "state",
                        "task types",
                        "slots",
                        "cpus",
                        "memory",
                        "gpus",
                        "last heartbeat",
                    ]);
                    for worker in &workers {
                        table.add_row(vec![
                            worker.name.clone(),
                            worker.state.as_str().to_string(),
                            output::list(&worker.capabilities.supported_task_types),
                            format!("{}/{}", worker.running, worker.slots),
                            format!("{}", worker.hardware.cpus),
                            flowmesh_types::format_bytes(worker.hardware.memory_bytes),
                            worker.hardware.gpus.len().to_string(),
                            worker.last_heartbeat_at.clone(),
                        ]);
                    }
                    output::print_table(&table);
                }
            }
        }
        WorkerQuery::Inspect { worker } => {
            let worker: WorkerView = client
                .get(&format!("/workers/{}", path_segment(&worker)?))
                .await?;
            match output {
                Output::Json => output::print_json(&worker),
                Output::Table => print_worker(&worker),
            }
        }
    }
    Ok(())
}

fn print_worker(worker: &WorkerView) {
    let labels = output::list(worker.labels.iter().map(|(k, v)| format!("{k}={v}")));
    output::print_fields(&[
        ("name", worker.name.clone()),
        ("id", worker.id.clone()),
        ("state", worker.state.as_str().to_string()),
        ("version", worker.version.clone()),
        (
            "runs tasks of",
            worker.tenant.as_ref().map_or_else(
                || "every tenant that allows shared workers (a shared worker)".to_string(),
                |tenant| format!("tenant {tenant} only"),
            ),
        ),
        (
            "task types",
            output::list(worker.served.types.iter().map(|(task_type, plugin)| {
                if plugin.local {
                    format!("{task_type} (local plugin {})", plugin.name)
                } else {
                    task_type.clone()
                }
            })),
        ),
        (
            "slots",
            format!("{} running of {}", worker.running, worker.slots),
        ),
        ("cpus", worker.hardware.cpus.to_string()),
        (
            "memory",
            flowmesh_types::format_bytes(worker.hardware.memory_bytes),
        ),
        ("labels", labels),
        ("registered", worker.registered_at.clone()),
        ("last heartbeat", worker.last_heartbeat_at.clone()),
    ]);
    if !worker.hardware.gpus.is_empty() {
        crate::outln!();
        let mut table = output::table(&["gpu", "model", "memory"]);
        for gpu in &worker.hardware.gpus {
            table.add_row(vec![
                gpu.index.to_string(),
                gpu.model.clone(),
                flowmesh_types::format_bytes(gpu.memory_bytes),
            ]);
        }
        output::print_table(&table);
    }
    crate::outln!();
    let mut plugins = output::table(&["plugin", "version", "status", "task types / reason"]);
    for plugin in &worker.capabilities.plugins {
        let detail = match plugin.status {
            PluginStatus::Available => output::list(
                plugin
                    .manifest
                    .iter()
                    .flat_map(|manifest| manifest.task_types.iter().map(|t| t.name.clone())),
            ),
            PluginStatus::Unavailable => plugin.reason.clone().unwrap_or_default(),
        };
        plugins.add_row(vec![
            plugin.name.clone(),
            plugin.version.clone().unwrap_or_else(|| "-".into()),
            match plugin.status {
                PluginStatus::Available => "available".to_string(),
                PluginStatus::Unavailable => "unavailable".to_string(),
            },
            detail,
        ]);
    }
    output::print_table(&plugins);
    if !worker.served.refused.is_empty() {
        crate::outln!();
        let mut refused = output::table(&["refused task type", "plugin", "why"]);
        for refusal in &worker.served.refused {
            refused.add_row(vec![
                refusal.task_type.clone(),
                format!("{} {}", refusal.plugin.name, refusal.plugin.digest),
                refusal.reason.clone(),
            ]);
        }
        output::print_table(&refused);
    }
    crate::outln!();
    let mut capabilities = output::table(&["capability", "interface", "status", "detail"]);
    for capability in &worker.capabilities.capabilities {
        capabilities.add_row(vec![
            capability.kind.name().to_string(),
            capability.interface.clone(),
            match capability.status {
                CapabilityStatus::Available => "available".to_string(),
                CapabilityStatus::Absent => "absent".to_string(),
            },
            capability.detail.clone(),
        ]);
    }
    output::print_table(&capabilities);
}
