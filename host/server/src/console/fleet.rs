//! The fleet: workers with their capabilities and why a plugin does not
//! run on one; installed plugins with their task types' schemas and the
//! workers that serve them; tokens (admins).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use flowmesh_types::api::{WorkerPluginStatus, WorkerState, WorkerView};
use flowmesh_types::{CapabilityStatus, PluginStatus};
use maud::{Markup, html};

use super::page::{
    Failure, PageForm, PageResult, Section, csrf_field, maybe_time, page, state_badge, time,
};
use super::schema;
use super::session::Viewer;
use super::tasks::CsrfForm;
use crate::api::fleet as api;
use crate::state::AppState;

fn bytes(n: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    let n = n as f64;
    if n >= GIB {
        format!("{:.1} GiB", n / GIB)
    } else {
        format!("{:.0} MiB", n / MIB)
    }
}

/// `GET /workers`.
pub(super) async fn workers(State(state): State<Arc<AppState>>, viewer: Viewer) -> PageResult {
    let workers = api::workers(&state, &viewer.principal).await?;
    let body = html! {
        h1 { "Workers" }
        @if workers.is_empty() {
            p.muted { "No worker has registered. Start one with " code { "flowmesh worker" } "." }
        }
        @for worker in &workers { (worker_card(worker)) }
    };
    Ok(page(Some(viewer.who()), Section::Workers, "Workers", body).into_response())
}

fn worker_card(worker: &WorkerView) -> Markup {
    let live = worker.state == WorkerState::Live;
    html! {
        section.worker id={ "worker-" (worker.id) } data-worker=(worker.name) {
            h2 { (worker.name) " " (state_badge(worker.state.as_str())) }
            dl.facts {
                dt { "tasks held" } dd { (worker.running) " on " (worker.slots) " slots" @if worker.read_ahead > 0 { " (claims up to " (worker.read_ahead) " ahead)" } }
                dt { "hardware" } dd {
                    (format!("{} CPUs", worker.hardware.cpus)) ", " (bytes(worker.hardware.memory_bytes))
                    @for gpu in &worker.hardware.gpus { ", GPU " (gpu.index) ": " (gpu.model) " " (bytes(gpu.memory_bytes)) }
                }
                dt { "last heartbeat" } dd { (time(&worker.last_heartbeat_at)) }
                dt { "registered" } dd { (time(&worker.registered_at)) }
                dt { "version" } dd { (worker.version) }
                dt { "runs tasks of" } dd { (worker.tenant.as_deref().map_or("every tenant that allows shared workers".to_string(), |tenant| format!("tenant {tenant}"))) }
                @if !worker.labels.is_empty() {
                    dt { "labels" } dd { @for (key, value) in &worker.labels { code.label { (key) "=" (value) } " " } }
                }
                dt { "task types" } dd.types { @if worker.served.types.is_empty() { span.muted { "none" } } @else { (worker.served.types.keys().cloned().collect::<Vec<_>>().join(", ")) } }
            }
            @if live {
                h3 { "Capabilities" }
                ul.capabilities {
                    @for capability in &worker.capabilities.capabilities {
                        li {
                            @if capability.status == CapabilityStatus::Available { span.state data-state="available" { "available" } }
                            @else { span.state data-state="unavailable" { "absent" } }
                            " " code { (capability.interface) } " — " (capability.detail)
                        }
                    }
                }
                h3 { "Plugins" }
                table.plugins {
                    thead { tr { th { "plugin" } th { "status" } th { "why" } } }
                    tbody {
                        @for plugin in &worker.capabilities.plugins {
                            tr data-plugin=(plugin.name) {
                                td { (plugin.name) " " span.muted { (plugin.version.as_deref().unwrap_or("")) } }
                                td { @if plugin.status == PluginStatus::Available { (state_badge("available")) } @else { (state_badge("unavailable")) } }
                                td.reason { (plugin.reason.as_deref().unwrap_or("")) }
                            }
                        }
                        @for refused in &worker.served.refused {
                            tr data-plugin=(refused.plugin.name) {
                                td { (refused.plugin.name) " (" (refused.task_type) ")" }
                                td { (state_badge("refused")) }
                                td.reason { (refused.reason) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /plugins`.
pub(super) async fn plugins(State(state): State<Arc<AppState>>, viewer: Viewer) -> PageResult {
    let plugins = api::plugins(&state).await?;
    let body = html! {
        h1 { "Plugins" }
        @if plugins.is_empty() {
            p.muted { "No plugin is installed. Install one with " code { "flowmesh plugin install FILE.wasm" } "." }
        } @else {
            table #plugin-list {
                thead { tr { th { "plugin" } th { "version" } th { "task types" } th { "installed" } } }
                tbody {
                    @for plugin in &plugins {
                        tr {
                            td { a href={ "/plugins/" (plugin.report.name) } { (plugin.report.name) } }
                            td { (plugin.report.version.as_deref().unwrap_or("")) }
                            td { (plugin.report.manifest.as_ref().map(|manifest| manifest.task_types.iter().map(|info| info.name.clone()).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                            td { (maybe_time(plugin.installed_at.as_deref())) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(Some(viewer.who()), Section::Plugins, "Plugins", body).into_response())
}

/// `GET /plugins/{name}`.
pub(super) async fn plugin(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> PageResult {
    let plugin = api::plugin(&state, &viewer.principal, &name)
        .await
        .map_err(|failure| Failure::lookup(failure, "plugin", &name))?;
    let report = &plugin.report;
    let body = html! {
        header.title {
            h1 { (report.name) " " span.muted { (report.version.as_deref().unwrap_or("")) } }
            @if viewer.is_admin() {
                form #remove method="post" action={ "/plugins/" (report.name) "/remove" } {
                    (csrf_field(&viewer.csrf))
                    button.danger type="submit" { "Remove plugin" }
                }
            }
        }
        dl.facts {
            dt { "digest" } dd { code { (report.digest) } }
            dt { "imports" } dd { @if report.imports.is_empty() { span.muted { "no capability" } } @else { (report.imports.join(", ")) } }
            @if let Some(manifest) = &report.manifest { dt { "about" } dd { (manifest.description) } }
        }
        @if let Some(manifest) = &report.manifest {
            @for info in &manifest.task_types {
                section.task-type id={ "type-" (info.name) } {
                    h2 { (info.name) }
                    p { (info.description) }
                    (schema::render(&info.spec_schema))
                }
            }
        }
        section {
            h2 { "Live workers" }
            @if plugin.workers.is_empty() {
                p.muted { "No live worker." }
            } @else {
                table #plugin-workers {
                    thead { tr { th { "worker" } th { "status" } th { "why" } } }
                    tbody {
                        @for worker in &plugin.workers {
                            tr {
                                td { a href={ "/workers#worker-" (worker.id) } { (worker.name) } }
                                td { (state_badge(worker.status.as_str())) }
                                td.reason { @if worker.status == WorkerPluginStatus::Available { "runs it" } @else { (worker.reason.as_deref().unwrap_or("")) } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(Some(viewer.who()), Section::Plugins, &report.name, body).into_response())
}

/// `POST /plugins/{name}/remove` (admins).
pub(super) async fn remove_plugin(
    State(state): State<Arc<AppState>>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(name): Path<String>,
    PageForm(form): PageForm<CsrfForm>,
) -> PageResult {
    viewer.check_form(&headers, &form.csrf)?;
    viewer.require_admin("removing plugins")?;
    if state.remove_plugin(&name).await? {
        Ok(Redirect::to("/plugins").into_response())
    } else {
        Err(Failure::not_found("plugin", &name))
    }
}

/// `GET /tokens` (admins): every token, never a secret.
pub(super) async fn tokens(State(state): State<Arc<AppState>>, viewer: Viewer) -> PageResult {
    viewer.require_admin("listing tokens")?;
    let tokens = state.store.tokens().await?;
    let body = html! {
        h1 { "Tokens" }
        p.muted { "Create and revoke tokens with " code { "flowmesh token create" } " and " code { "flowmesh token revoke" } "." }
        table #token-list {
            thead { tr { th { "id" } th { "name" } th { "tenant" } th { "role" } th { "created" } th { "expires" } th { "revoked" } } }
            tbody {
                @for token in &tokens {
                    tr {
                        td { code { (token.id) } }
                        td { (token.name.as_deref().unwrap_or("")) }
                        td { (token.tenant) }
                        td { (token.role.as_str()) @if token.shared { " (shared)" } }
                        td { (time(&token.created_at)) }
                        td { (maybe_time(token.expires_at.as_deref())) }
                        td { (maybe_time(token.revoked_at.as_deref())) }
                    }
                }
            }
        }
    };
    Ok(page(Some(viewer.who()), Section::Tokens, "Tokens", body).into_response())
}
