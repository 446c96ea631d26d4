//! Checking a task's plugin fields before it is stored.
//!
//! The server keeps every installed plugin loaded in a runtime that only
//! validates ([`HostCapabilities::validation_only`]): capability imports it
//! lacks are linked to traps, so a plugin that needs Docker or a GPU to *run*
//! can still check specs here. A spec is checked twice, in order: against the
//! JSON Schema the plugin declared for the task type, then by the plugin's
//! `validate()` export. Paths in the errors start at the document root
//! (`spec.message`).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use flowmesh_runtime::{HostCapabilities, PreparedPlugin, Runtime, RuntimeConfig};
use flowmesh_types::{FieldError, Manifest, PluginReport, PluginStatus, TaskError};
use serde_json::{Map, Value};

/// Why a spec was not accepted.
#[derive(Debug)]
pub enum SpecRejection {
    /// No installed plugin provides the task type.
    UnknownTaskType(String),
    /// The spec has problems, with paths.
    Invalid(Vec<FieldError>),
    /// The check itself could not run (the plugin trapped or timed out).
    CheckFailed(TaskError),
}

/// Installed plugins, loaded for checking specs.
pub struct Validator {
    runtime: Runtime,
    /// Every task type a loaded plugin serves.
    task_types: RwLock<HashMap<String, Provided>>,
    /// Each tenant's share of the runtime's instances: one tenant's checks
    /// (a plugin whose `validate()` runs to its deadline, many at once) wait
    /// on their own share and never hold every instance.
    shares: TenantShares,
}

/// One task type as a loaded plugin provides it.
#[derive(Clone)]
struct Provided {
    /// The plugin's name.
    plugin: String,
    /// Its compiled JSON Schema (`None` when the plugin's schema does not
    /// compile).
    schema: Option<Arc<jsonschema::Validator>>,
}

impl Validator {
    /// A validator whose compiled plugins are cached under `config`, running
    /// at most `share` checks of one tenant at once (and never more than
    /// half the runtime's instances).
    pub fn new(
        config: RuntimeConfig,
        share: usize,
    ) -> Result<Self, flowmesh_runtime::RuntimeError> {
        let share = share.clamp(1, (config.pool.max_instances as usize / 2).max(1));
        Ok(Self {
            runtime: Runtime::new(config, HostCapabilities::validation_only())?,
            task_types: RwLock::new(HashMap::new()),
            shares: TenantShares::new(share),
        })
    }

    /// Loads (or replaces) a plugin. The report says whether it is usable and
    /// what it declares.
    pub async fn load(
        &self,
        name: &str,
        component: Vec<u8>,
    ) -> Result<PluginReport, flowmesh_runtime::LoadError> {
        let report = self.runtime.load_plugin(name, component).await?;
        self.refresh_task_types();
        Ok(report)
    }

    /// Compiles and links a component for validation, without installing
    /// it: see [`Runtime::prepare_plugin`].
    pub async fn prepare(
        &self,
        component: Vec<u8>,
    ) -> Result<PreparedPlugin, flowmesh_runtime::LoadError> {
        self.runtime.prepare_plugin(component).await
    }

    /// The loaded plugin other than `name` serving one of `manifest`'s task
    /// types: `(task type, plugin)`.
    pub fn conflict(&self, name: &str, manifest: &Manifest) -> Option<(String, String)> {
        self.runtime.conflict(name, manifest)
    }

    /// Installs a prepared plugin as `name` (replacing the one loaded under
    /// that name).
    pub fn install(
        &self,
        name: &str,
        prepared: PreparedPlugin,
    ) -> Result<PluginReport, flowmesh_runtime::LoadError> {
        let report = self.runtime.install_prepared(name, prepared)?;
        self.refresh_task_types();
        Ok(report)
    }

    /// Unloads a plugin.
    pub fn remove(&self, name: &str) -> bool {
        let removed = self.runtime.remove_plugin(name);
        self.refresh_task_types();
        removed
    }

    /// Reports of the loaded plugins.
    pub fn reports(&self) -> Vec<PluginReport> {
        self.runtime.capabilities().plugins
    }

    /// The task types some loaded plugin provides, sorted.
    pub fn task_types(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .task_types
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// The name of the plugin that provides `task_type`.
    pub fn provider(&self, task_type: &str) -> Option<String> {
        self.task_types
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(task_type)
            .map(|provided| provided.plugin.clone())
    }

    fn refresh_task_types(&self) {
        let mut task_types = HashMap::new();
        for plugin in self.runtime.capabilities().plugins {
            let (PluginStatus::Available, Some(manifest)) = (plugin.status, plugin.manifest) else {
                continue;
            };
            for task_type in manifest.task_types {
                let schema = match jsonschema::validator_for(&task_type.spec_schema) {
                    Ok(validator) => Some(Arc::new(validator)),
                    Err(error) => {
                        tracing::warn!(
                            plugin = plugin.name,
                            task_type = task_type.name,
                            %error,
                            "the plugin's JSON Schema does not compile; only its validate() checks specs"
                        );
                        None
                    }
                };
                task_types.insert(
                    task_type.name,
                    Provided {
                        plugin: plugin.name.clone(),
                        schema,
                    },
                );
            }
        }
        *self
            .task_types
            .write()
            .unwrap_or_else(PoisonError::into_inner) = task_types;
    }

    /// Checks the plugin fields of a `task_type` spec of `tenant`.
    pub async fn check(
        &self,
        tenant: &str,
        task_type: &str,
        spec: &Map<String, Value>,
    ) -> Result<(), SpecRejection> {
        self.check_deferring(tenant, task_type, spec, &[]).await
    }

    /// Checks the plugin fields of a `task_type` spec in which the fields at
    /// the `deferred` paths (`spec.model`) still hold placeholders: problems
    /// reported at those fields, or inside them, wait until they are
    /// resolved; everything else is checked now.
    /// The plugin's `validate()` runs within `tenant`'s share of the
    /// validation pool.
    pub async fn check_deferring(
        &self,
        tenant: &str,
        task_type: &str,
        spec: &Map<String, Value>,
        deferred: &[String],
    ) -> Result<(), SpecRejection> {
        let now = |errors: Vec<FieldError>| -> Vec<FieldError> {
            errors
                .into_iter()
                .filter(|error| !is_deferred(&error.path, deferred))
                .collect()
        };
        let provided = self
            .task_types
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(task_type)
            .cloned()
            .ok_or_else(|| SpecRejection::UnknownTaskType(task_type.to_string()))?;
        let instance = Value::Object(spec.clone());
        if let Some(schema) = provided.schema {
            let errors: Vec<FieldError> = now(schema
                .iter_errors(&instance)
                .flat_map(|error| field_errors(&error))
                .collect());
            if !errors.is_empty() {
                return Err(SpecRejection::Invalid(errors));
            }
        }
        let share = self.shares.acquire(tenant).await;
        let validated = self
            .runtime
            .validate(task_type, &instance.to_string())
            .await;
        drop(share);
        match validated {
            Ok(Ok(())) => Ok(()),
            Ok(Err(errors)) => {
                let errors = now(errors
                    .into_iter()
                    .map(|error| FieldError::new(spec_field(&error.path), error.message))
                    .collect());
                if errors.is_empty() {
                    Ok(())
                } else {
                    Err(SpecRejection::Invalid(errors))
                }
            }
            Err(error) => Err(SpecRejection::CheckFailed(error)),
        }
    }
}

/// Per-tenant shares of the validation pool: at most `share` checks of one
/// tenant at once; the rest of that tenant's wait here, in order, leaving
/// the pool's other instances to other tenants.
struct TenantShares {
    share: usize,
    tenants: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

impl TenantShares {
    fn new(share: usize) -> Self {
        Self {
            share,
            tenants: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// A place in `tenant`'s share, held until dropped (`None` only if its
    /// semaphore were closed, which none is).
    async fn acquire(&self, tenant: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let semaphore = {
            let mut tenants = self.tenants.lock().unwrap_or_else(PoisonError::into_inner);
            if tenants.len() > 4096 {
                // Forget idle tenants: none of their places are taken.
                tenants.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
            }
            tenants
                .entry(tenant.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.share)))
                .clone()
        };
        semaphore.acquire_owned().await.ok()
    }
}

/// A path in one spelling: `spec.messages[0].role` → `spec.messages.0.role`.
pub fn normalize_path(path: &str) -> String {
    path.replace('[', ".").replace(']', "").replace("..", ".")
}

/// Whether `inner` is `outer` or a path inside it.
pub fn is_within(inner: &str, outer: &str) -> bool {
    inner
        .strip_prefix(outer)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Whether a problem reported at `path` is about one of the still
/// unresolved `fields`: at one, inside one, or at a mapping or list that
/// holds one (a schema's `oneOf` is reported there) other than the whole
/// spec.
pub fn is_deferred(path: &str, fields: &[String]) -> bool {
    if fields.is_empty() {
        return false;
    }
    let path = normalize_path(path);
    fields
        .iter()
        .any(|field| is_within(&path, field) || (path != "spec" && is_within(field, &path)))
}

/// One schema violation as field errors, each at the field it is about: an
/// unexpected property or a missing one is reported at its own path.
fn field_errors(error: &jsonschema::ValidationError<'_>) -> Vec<FieldError> {
    use jsonschema::error::ValidationErrorKind;
    let at = spec_path(&error.instance_path().to_string());
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| {
                FieldError::new(
                    format!("{at}.{name}"),
                    "unknown field: the plugin's schema does not allow it; check the spelling",
                )
            })
            .collect(),
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_string);
            vec![FieldError::new(
                format!("{at}.{name}"),
                "required field is missing",
            )]
        }
        _ => vec![FieldError::new(at, error.to_string())],
    }
}

/// `/a/0/b` (a JSON pointer into the spec) as `spec.a.0.b`.
fn spec_path(pointer: &str) -> String {
    let mut path = String::from("spec");
    for segment in pointer.split('/').filter(|segment| !segment.is_empty()) {
        path.push('.');
        path.push_str(&segment.replace("~1", "/").replace("~0", "~"));
    }
    path
}

/// A path the plugin reported, relative to the spec, from the document root.
fn spec_field(path: &str) -> String {
    let path = path.trim_start_matches('.').trim_start_matches('/');
    if path.is_empty() {
        "spec".to_string()
    } else if path.starts_with("spec.") {
        path.to_string()
    } else {
        format!("spec.{path}")
    }
}
