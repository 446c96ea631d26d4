//! Installed plugins on one worker: which could be instantiated here, which
//! not and why, and which plugin serves each task type.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use flowmesh_types::{Manifest, PluginReport, PluginStatus, TaskTypeInfo, is_valid_name};
use wasmtime::component::Component;

use crate::ComponentDigest;
use crate::SandboxState;
use crate::bindings::PluginFullPre;
use crate::bindings::exports::flowmesh::executor::executor as wit;
use crate::capability::Capability;

/// A plugin that instantiated against this worker's linker.
pub(crate) struct ReadyPlugin {
    pub(crate) digest: ComponentDigest,
    pub(crate) manifest: Manifest,
    pub(crate) pre: PluginFullPre<SandboxState>,
    /// The optional capabilities it imports, as they were when it was
    /// linked; only these are prepared per task. A task keeps using them even
    /// when a later probe replaces them.
    pub(crate) capabilities: Vec<Arc<dyn Capability>>,
    /// Whether its tasks get a scratch directory: it imports WASI's file
    /// system, or a capability that may share the directory with what it
    /// runs (a container mounts it). A component importing neither can
    /// reach no file at all, so its tasks skip the directory and its
    /// janitor.
    pub(crate) scratch: bool,
}

impl ReadyPlugin {
    /// Whether a component with these `imports` and `capabilities` needs a
    /// scratch directory per task (see [`ReadyPlugin::scratch`]).
    pub(crate) fn needs_scratch(imports: &[String], capabilities: &[Arc<dyn Capability>]) -> bool {
        !capabilities.is_empty()
            || imports
                .iter()
                .any(|import| import.starts_with("wasi:filesystem/"))
    }
}

/// One installed plugin and what became of it here.
pub(crate) struct Installed {
    pub(crate) digest: ComponentDigest,
    /// Kept to link it again when the worker's capabilities change.
    pub(crate) component: Component,
    pub(crate) imports: Vec<String>,
    /// The generation of the linker it was linked against.
    pub(crate) generation: u64,
    pub(crate) outcome: Result<Arc<ReadyPlugin>, String>,
}

/// Every installed plugin, and the route from task type to plugin.
#[derive(Default)]
pub(crate) struct PluginSet {
    installed: BTreeMap<String, Installed>,
    routes: HashMap<String, Arc<ReadyPlugin>>,
}

impl PluginSet {
    /// The plugin serving `task_type`.
    pub(crate) fn route(&self, task_type: &str) -> Option<&Arc<ReadyPlugin>> {
        self.routes.get(task_type)
    }

    /// The plugin (other than `name`) already serving one of `task_types`.
    pub(crate) fn conflict(&self, name: &str, manifest: &Manifest) -> Option<(String, String)> {
        manifest.task_types.iter().find_map(|task_type| {
            self.installed
                .iter()
                .filter(|(other, _)| other.as_str() != name)
                .find(|(_, installed)| {
                    installed.outcome.as_ref().is_ok_and(|ready| {
                        ready
                            .manifest
                            .task_types
                            .iter()
                            .any(|t| t.name == task_type.name)
                    })
                })
                .map(|(other, _)| (task_type.name.clone(), other.clone()))
        })
    }

    /// Every installed plugin linked against an older linker than
    /// `generation`: name, digest, component and imports.
    pub(crate) fn linked_before(
        &self,
        generation: u64,
    ) -> Vec<(String, ComponentDigest, Component, Vec<String>)> {
        self.installed
            .iter()
            .filter(|(_, installed)| installed.generation < generation)
            .map(|(name, installed)| {
                (
                    name.clone(),
                    installed.digest.clone(),
                    installed.component.clone(),
                    installed.imports.clone(),
                )
            })
            .collect()
    }

    /// The installed plugin `name`, if its component is `digest`.
    pub(crate) fn get_if(&self, name: &str, digest: &ComponentDigest) -> Option<&Installed> {
        self.installed
            .get(name)
            .filter(|installed| &installed.digest == digest)
    }

    /// Installs (or replaces) `name`.
    pub(crate) fn insert(&mut self, name: String, installed: Installed) {
        self.installed.insert(name, installed);
        self.rebuild_routes();
    }

    /// Removes `name`; whether it was installed.
    pub(crate) fn remove(&mut self, name: &str) -> bool {
        let removed = self.installed.remove(name).is_some();
        self.rebuild_routes();
        removed
    }

    fn rebuild_routes(&mut self) {
        self.routes = self
            .installed
            .values()
            .filter_map(|installed| installed.outcome.as_ref().ok())
            .flat_map(|ready| {
                ready
                    .manifest
                    .task_types
                    .iter()
                    .map(move |task_type| (task_type.name.clone(), ready.clone()))
            })
            .collect();
    }

    pub(crate) fn supported_task_types(&self) -> BTreeSet<String> {
        self.routes.keys().cloned().collect()
    }

    pub(crate) fn reports(&self) -> Vec<PluginReport> {
        self.installed
            .iter()
            .map(|(name, installed)| report(name, installed))
            .collect()
    }

    pub(crate) fn report(&self, name: &str) -> Option<PluginReport> {
        self.installed
            .get(name)
            .map(|installed| report(name, installed))
    }
}

fn report(name: &str, installed: &Installed) -> PluginReport {
    let (status, reason, manifest) = match &installed.outcome {
        Ok(ready) => (PluginStatus::Available, None, Some(ready.manifest.clone())),
        Err(reason) => (PluginStatus::Unavailable, Some(reason.clone()), None),
    };
    PluginReport {
        name: name.to_string(),
        version: manifest.as_ref().map(|m| m.version.clone()),
        digest: installed.digest.to_string(),
        status,
        reason,
        imports: installed.imports.clone(),
        manifest,
    }
}

/// Checks a manifest from `describe()` and converts it.
pub(crate) fn manifest_from_wit(manifest: wit::Manifest) -> Result<Manifest, String> {
    if !is_valid_name(&manifest.name) {
        return Err(format!(
            "describe() returned the plugin name {:?}: use lowercase letters, digits and '-'",
            manifest.name
        ));
    }
    if manifest.task_types.is_empty() {
        return Err("describe() lists no task types".into());
    }
    let mut seen = BTreeSet::new();
    let mut task_types = Vec::with_capacity(manifest.task_types.len());
    for task_type in manifest.task_types {
        if !is_valid_name(&task_type.name) {
            return Err(format!(
                "describe() returned the task type {:?}: use lowercase letters, digits and '-'",
                task_type.name
            ));
        }
        if !seen.insert(task_type.name.clone()) {
            return Err(format!(
                "describe() lists task type {:?} twice",
                task_type.name
            ));
        }
        let spec_schema: serde_json::Value = serde_json::from_str(&task_type.spec_schema)
            .map_err(|error| {
                format!(
                    "describe() returned a spec schema for task type {:?} that is not JSON: {error}",
                    task_type.name
                )
            })?;
        if !spec_schema.is_object() && !spec_schema.is_boolean() {
            return Err(format!(
                "describe() returned a spec schema for task type {:?} that is not a JSON Schema (an object)",
                task_type.name
            ));
        }
        task_types.push(TaskTypeInfo {
            name: task_type.name,
            description: task_type.description,
            spec_schema,
        });
    }
    Ok(Manifest {
        name: manifest.name,
        version: manifest.version,
        description: manifest.description,
        task_types,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wit_manifest(task_types: &[(&str, &str)]) -> wit::Manifest {
        wit::Manifest {
            name: "demo".into(),
            version: "1.0.0".into(),
            description: "demo".into(),
            task_types: task_types
                .iter()
                .map(|(name, schema)| wit::TaskType {
                    name: name.to_string(),
                    description: String::new(),
                    spec_schema: schema.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_valid_manifest_converts() {
        let manifest =
            manifest_from_wit(wit_manifest(&[("echo", r#"{"type":"object"}"#)])).expect("valid");
        assert_eq!(manifest.task_types[0].spec_schema["type"], "object");
    }

    #[test]
    fn a_manifest_with_a_bad_schema_is_rejected_naming_the_task_type() {
        let error = manifest_from_wit(wit_manifest(&[("echo", "{not json")])).expect_err("invalid");
        assert!(error.contains("\"echo\""), "{error}");
    }

    #[test]
    fn a_manifest_with_duplicate_or_badly_named_task_types_is_rejected() {
        let schema = r#"{"type":"object"}"#;
        assert!(manifest_from_wit(wit_manifest(&[("a", schema), ("a", schema)])).is_err());
        assert!(manifest_from_wit(wit_manifest(&[("Has Space", schema)])).is_err());
        assert!(manifest_from_wit(wit_manifest(&[])).is_err());
    }
}
