//! Which task types the server routes to a worker, decided from the plugins
//! the worker reports, never from the types it claims.
//!
//! A worker reports each plugin it loaded with the sha256 digest of the
//! component bytes. A digest the server has installed is the installed
//! plugin, whatever name the worker gives it: it serves the types the
//! server's copy of its manifest declares. Any other component is the
//! worker's own (`flowmesh worker --plugin`, or an installed plugin's old
//! version still loaded). Such a local plugin serves a type only if no
//! installed plugin declares that type, and only if the server allows local
//! plugins at all. So a worker can never take over an installed type with a
//! component of its own: its `echo` is refused, with the reason shown in
//! `worker inspect`, and echo tasks go only to workers that run the
//! installed echo.

use std::collections::HashMap;

use flowmesh_types::api::{PluginRef, RefusedType, ServedTypes};
use flowmesh_types::{PluginReport, PluginStatus};

use crate::store::PluginRecord;

/// The installed plugins, indexed for [`served`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Installed {
    /// Each installed component by digest, with the types it declares.
    by_digest: HashMap<String, (PluginRef, Vec<String>)>,
    /// The installed plugin that declares each task type.
    by_type: HashMap<String, PluginRef>,
}

impl Installed {
    /// The index of the installed plugins `records`.
    pub fn of(records: &[PluginRecord]) -> Self {
        let mut installed = Self::default();
        for record in records {
            let plugin = PluginRef {
                name: record.name.clone(),
                version: record.version.clone(),
                digest: record.digest.clone(),
                local: false,
            };
            let types: Vec<String> = record
                .manifest
                .task_types
                .iter()
                .map(|task_type| task_type.name.clone())
                .collect();
            for task_type in &types {
                installed.by_type.insert(task_type.clone(), plugin.clone());
            }
            installed
                .by_digest
                .insert(record.digest.clone(), (plugin, types));
        }
        installed
    }
}

/// The task types a worker reporting `plugins` is routed, with the plugin
/// of each, and the types it reported that it is not, with why.
/// `local_plugins` says whether the server runs workers' own plugins.
pub fn served(plugins: &[PluginReport], installed: &Installed, local_plugins: bool) -> ServedTypes {
    let mut served = ServedTypes::default();
    let available = plugins
        .iter()
        .filter(|plugin| plugin.status == PluginStatus::Available);
    for report in available {
        if let Some((plugin, types)) = installed.by_digest.get(&report.digest) {
            for task_type in types {
                served.types.insert(task_type.clone(), plugin.clone());
            }
            continue;
        }
        let Some(manifest) = &report.manifest else {
            continue;
        };
        let plugin = PluginRef {
            name: report.name.clone(),
            version: manifest.version.clone(),
            digest: report.digest.clone(),
            local: true,
        };
        for task_type in &manifest.task_types {
            let name = &task_type.name;
            let refusal = if let Some(owner) = installed.by_type.get(name) {
                Some(format!(
                    "task type {name:?} belongs to the installed plugin {:?} {} ({}); this worker's plugin {:?} is another component ({}), so only workers running the installed one get these tasks",
                    owner.name, owner.version, owner.digest, plugin.name, plugin.digest
                ))
            } else if !local_plugins {
                Some(format!(
                    "this server runs no plugin of a worker's own (local plugins are off: `flowmesh server --no-local-plugins`); install {:?} on the server to run task type {name:?}",
                    plugin.name
                ))
            } else {
                None
            };
            match refusal {
                Some(reason) => served.refused.push(RefusedType {
                    task_type: name.clone(),
                    plugin: plugin.clone(),
                    reason,
                }),
                None => {
                    served
                        .types
                        .entry(name.clone())
                        .or_insert_with(|| plugin.clone());
                }
            }
        }
    }
    served
}

#[cfg(test)]
mod tests {
    use flowmesh_types::{Manifest, TaskTypeInfo};

    use super::*;

    fn manifest(name: &str, types: &[&str]) -> Manifest {
        Manifest {
            name: name.into(),
            version: "1.0.0".into(),
            description: String::new(),
            task_types: types
                .iter()
                .map(|task_type| TaskTypeInfo {
                    name: (*task_type).into(),
                    description: String::new(),
                    spec_schema: serde_json::json!({}),
                })
                .collect(),
        }
    }

    fn report(name: &str, digest: &str, types: &[&str]) -> PluginReport {
        PluginReport {
            name: name.into(),
            version: Some("1.0.0".into()),
            digest: digest.into(),
            status: PluginStatus::Available,
            reason: None,
            imports: Vec::new(),
            manifest: Some(manifest(name, types)),
        }
    }

    fn installed() -> Installed {
        Installed::of(&[PluginRecord {
            name: "echo".into(),
            version: "1.0.0".into(),
            digest: "sha256:echo".into(),
            manifest: manifest("echo", &["echo", "sleep"]),
            imports: Vec::new(),
            installed_at: 0,
        }])
    }

    #[test]
    fn the_installed_digest_serves_the_installed_types_whatever_the_worker_calls_it() {
        let served = served(
            &[report("renamed", "sha256:echo", &["something-else"])],
            &installed(),
            true,
        );
        assert_eq!(
            served.types.keys().collect::<Vec<_>>(),
            ["echo", "sleep"],
            "the server's manifest, not the worker's"
        );
        assert!(!served.types["echo"].local);
        assert!(served.refused.is_empty());
    }

    #[test]
    fn a_local_plugin_never_serves_an_installed_type() {
        let served = served(
            &[report("hijack", "sha256:other", &["echo", "mine"])],
            &installed(),
            true,
        );
        assert_eq!(served.types.keys().collect::<Vec<_>>(), ["mine"]);
        assert!(served.types["mine"].local);
        assert_eq!(served.refused.len(), 1);
        assert_eq!(served.refused[0].task_type, "echo");
        assert!(
            served.refused[0].reason.contains("sha256:echo"),
            "{}",
            served.refused[0].reason
        );
    }

    #[test]
    fn local_plugins_can_be_forbidden() {
        let served = served(
            &[report("mine", "sha256:mine", &["mine"])],
            &installed(),
            false,
        );
        assert!(served.types.is_empty());
        assert!(served.refused[0].reason.contains("--no-local-plugins"));
    }

    #[test]
    fn an_unavailable_plugin_serves_nothing() {
        let mut unavailable = report("echo", "sha256:echo", &["echo"]);
        unavailable.status = PluginStatus::Unavailable;
        let served = served(&[unavailable], &installed(), true);
        assert!(served.types.is_empty() && served.refused.is_empty());
    }
}
