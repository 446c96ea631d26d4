//! `flowmesh validate FILE...`: checks task and workflow documents without
//! running them.
//!
//! Offline, it checks the envelope (apiVersion, kind, metadata, taskType,
//! resources, timeout, maxAttempts) exactly as the server parses it, and a
//! workflow's graph (names, references, cycles, placeholders). With a
//! server — one named by `--server`, `FLOWMESH_SERVER` or the config file,
//! unless `--offline` — it also asks the server to check each document
//! against its plugin's JSON Schema and `validate()` (`POST
//! /tasks?dryRun=true`: nothing is stored).

use std::time::Duration;

use flowmesh_types::{Document, parse};
use serde_json::Value;

use crate::client::ApiClient;
use crate::error::{CliError, CliResult};
use crate::input::read_input;
use crate::output::{self, Output};

/// `flowmesh validate` options.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Task or workflow documents (YAML or JSON); `-` for standard input.
    #[arg(required = true, value_name = "FILE|-")]
    files: Vec<String>,
    /// Check the envelope only, even when a server is configured.
    #[arg(long)]
    offline: bool,
}

/// One document's verdict.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Verdict {
    file: String,
    valid: bool,
    /// `envelope` (offline) or `server` (schema and plugin checks too).
    checked: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    errors: Vec<flowmesh_types::FieldError>,
}

pub(crate) async fn run(
    args: ValidateArgs,
    client: Option<ApiClient>,
    output: Output,
) -> CliResult {
    let client = if args.offline { None } else { client };
    let mut verdicts = Vec::new();
    for file in &args.files {
        let bytes = read_input(file)?;
        verdicts.push(check(file, bytes, client.as_ref()).await?);
    }
    let invalid = verdicts.iter().filter(|v| !v.valid).count();
    match output {
        Output::Json => output::print_json(&verdicts),
        Output::Table => {
            for verdict in &verdicts {
                if verdict.valid {
                    crate::outln!(
                        "{}: valid {} ({})",
                        verdict.file,
                        verdict.task_type.as_deref().unwrap_or("task"),
                        if verdict.checked == "server" {
                            "envelope, schema and plugin checks"
                        } else {
                            "envelope only; plugin fields are checked with a server"
                        }
                    );
                } else {
                    crate::outln!(
                        "{}: invalid: {}",
                        verdict.file,
                        verdict.message.as_deref().unwrap_or("")
                    );
                    for error in &verdict.errors {
                        crate::outln!("  {}: {}", error.path, error.message);
                    }
                }
            }
        }
    }
    if invalid > 0 {
        return Err(CliError::Failed(format!(
            "{invalid} of {} document(s) invalid",
            verdicts.len()
        )));
    }
    Ok(())
}

async fn check(file: &str, bytes: Vec<u8>, client: Option<&ApiClient>) -> CliResult<Verdict> {
    let mut verdict = Verdict {
        file: file.to_string(),
        valid: false,
        checked: "envelope",
        task_type: None,
        message: None,
        errors: Vec::new(),
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        verdict.message = Some("not UTF-8 text; write YAML or JSON".into());
        return Ok(verdict);
    };
    match parse(text) {
        Ok(Document::Task(document)) => verdict.task_type = Some(document.spec.task_type),
        Ok(Document::Workflow(workflow)) => {
            let mut types: Vec<&str> = workflow
                .stages
                .iter()
                .map(|stage| stage.spec.task_type.as_str())
                .collect();
            types.sort_unstable();
            types.dedup();
            verdict.task_type = Some(format!(
                "workflow of {} stage(s): {}",
                workflow.stages.len(),
                types.join(", ")
            ));
        }
        Err(errors) => {
            verdict.message = Some(format!("{} problem(s) in the document", errors.len()));
            verdict.errors = errors;
            return Ok(verdict);
        }
    }
    let Some(client) = client else {
        verdict.valid = true;
        return Ok(verdict);
    };
    verdict.checked = "server";
    match client
        .post::<Value>(
            "/tasks?dryRun=true",
            bytes,
            "application/yaml",
            Duration::from_secs(60),
        )
        .await
    {
        Ok(_) => verdict.valid = true,
        Err(CliError::Api {
            status: 400 | 422,
            message,
            details,
            ..
        }) => {
            verdict.message = Some(message);
            verdict.errors = details;
        }
        Err(CliError::Unreachable { server, error }) => {
            eprintln!(
                "warning: cannot reach {server} ({error}); {file}: checked the envelope only (--offline skips the server)"
            );
            verdict.checked = "envelope";
            verdict.valid = true;
        }
        Err(other) => return Err(other),
    }
    Ok(verdict)
}
