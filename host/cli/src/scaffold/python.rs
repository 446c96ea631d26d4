//! `flowmesh plugin new NAME --lang python`: a Python plugin folder on the
//! FlowMesh Python SDK, ready for `flowmesh plugin build`.
//!
//! The folder carries everything its build and tests read: `app.py`, the
//! world it targets with the WIT packages of this FlowMesh version under
//! `wit/deps/`, the SDK of this version (`flowmesh_sdk/`, so plain `pytest`
//! imports it), pinned requirements, a test and an example task.

use std::path::Path;

use flowmesh_wasm_build::python::{BUILD_REQUIREMENTS, SDK_FILES, WIT_DEPS};

use super::{example_task, type_name};

/// The files of a new Python plugin `name`, as `(path, contents)`.
pub(crate) fn files(name: &str) -> Vec<(String, String)> {
    let mut files = vec![
        ("app.py".to_string(), app_py(name)),
        ("test_app.py".to_string(), test_py(name)),
        ("wit/world.wit".to_string(), world(name)),
        (
            "requirements.txt".to_string(),
            BUILD_REQUIREMENTS.to_string(),
        ),
        ("examples/task.yaml".to_string(), example_task(name)),
        ("README.md".to_string(), readme(name)),
        (
            ".gitignore".to_string(),
            "/.venv/\n/build/\n__pycache__/\n".to_string(),
        ),
    ];
    for (file, text) in WIT_DEPS {
        files.push((format!("wit/deps/{file}"), text.to_string()));
    }
    for (file, text) in SDK_FILES {
        files.push((format!("flowmesh_sdk/{file}"), text.to_string()));
    }
    files
}

/// What to run next, printed after the folder is made.
pub(crate) fn next_steps(name: &str, dir: &Path) -> Vec<String> {
    vec![
        format!("cd {}", dir.display()),
        "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt   # once".into(),
        ".venv/bin/pytest                                  # its own tests, on this machine".into(),
        "flowmesh plugin build                             # the component".into(),
        format!("flowmesh plugin install build/{name}.wasm"),
        "flowmesh task submit examples/task.yaml --wait".into(),
    ]
}

fn function_name(name: &str) -> String {
    name.replace('-', "_")
}

fn app_py(name: &str) -> String {
    let function = function_name(name);
    let class = type_name(name);
    format!(
        r#""""The `{name}` FlowMesh plugin.

A plugin declares task types. Each has a spec (the plugin-owned fields of a
task document; its JSON Schema is derived from the dataclass and checked by
the server at submit time), an optional `validate` for what a schema cannot
say, and the function that executes a task in a fresh sandbox on a worker.

Imports belong at the top of this file: `flowmesh plugin build` runs it once
and the component holds only the modules imported then.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowmesh_sdk import InvalidInput, Plugin, Task, log

plugin = Plugin("{name}", version="0.1.0", description="Greets people.")


@dataclass
class {class}Spec:
    """Spec of a `{name}` task."""

    name: str = field(metadata={{"description": "Who to greet.", "minLength": 1}})
    excitement: int = field(default=0, metadata={{
        "description": "How many exclamation marks.", "minimum": 0, "maximum": 10,
    }})


@plugin.task_type("{name}", description="Greets someone.")
def {function}(spec: {class}Spec, task: Task) -> dict:
    # log, progress, and print() reach the task's event stream on a worker.
    log.info(f"greeting {{spec.name}} (attempt {{task.attempt}})")
    return {{"greeting": f"Hello, {{spec.name}}" + "!" * spec.excitement}}


@{function}.validate
def _check(spec: {class}Spec) -> None:
    if not spec.name.strip():
        raise InvalidInput.at("name", "must not be blank")


# What componentize-py builds into the component's exports.
Executor = plugin.export()
"#
    )
}

fn test_py(name: &str) -> String {
    format!(
        r#""""Tests of the `{name}` plugin, as plain Python: no server, no worker."""

import pytest

from app import plugin
from flowmesh_sdk import InvalidInput


def test_greets():
    out = plugin.execute("{name}", {{"name": "Ada", "excitement": 2}})
    assert out == {{"greeting": "Hello, Ada!!"}}


def test_a_blank_name_is_refused_with_its_path():
    errors = plugin.validate("{name}", {{"name": "  "}})
    assert [e.path for e in errors] == ["name"]
    with pytest.raises(InvalidInput):
        plugin.execute("{name}", {{"name": "  "}})


def test_unknown_fields_are_refused():
    errors = plugin.validate("{name}", {{"name": "Ada", "colour": "red"}})
    assert [e.path for e in errors] == ["colour"]


def test_the_schema_is_derived_from_the_spec():
    schema = plugin.manifest()["task_types"][0]["spec_schema"]
    assert schema["required"] == ["name"]
    assert schema["properties"]["excitement"]["maximum"] == 10
    assert schema["additionalProperties"] is False
"#
    )
}

fn world(name: &str) -> String {
    let package = name.replace('-', "");
    format!(
        r#"// The WIT world of the `{name}` plugin: the FlowMesh plugin contract, plus
// the host capabilities it uses. A worker runs the plugin only if it provides
// every interface imported here, so import only what the code calls:
//
//     import flowmesh:host/llm@0.1.0;         // flowmesh_sdk.llm: a model endpoint
//     import flowmesh:host/containers@0.1.0;  // flowmesh_sdk.containers: Docker
//     import flowmesh:host/gpu@0.1.0;         // flowmesh_sdk.gpu: NVML GPUs
//
// wit/deps/ holds the flowmesh packages of the FlowMesh version that made
// this folder.
package plugin:{package};

world plugin {{
    include flowmesh:executor/plugin@0.1.0;
}}
"#
    )
}

fn readme(name: &str) -> String {
    format!(
        r#"# {name}

A FlowMesh plugin in Python.

```sh
python3 -m venv .venv && .venv/bin/pip install -r requirements.txt   # once
.venv/bin/pytest                                 # its tests, as plain Python
flowmesh plugin build                            # → build/{name}.wasm
flowmesh plugin install build/{name}.wasm
flowmesh task submit examples/task.yaml --wait
```

- `app.py`: the plugin. Import every module at the top: the component holds
  only the modules imported when `flowmesh plugin build` loads it.
- `wit/world.wit`: the capabilities it imports (none yet).
- `flowmesh_sdk/`: the FlowMesh Python SDK of the version that made this folder.
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_python_identifiers() {
        assert_eq!(function_name("image-resize"), "image_resize");
    }

    #[test]
    fn the_folder_carries_its_wit_its_sdk_and_pinned_requirements() {
        let files = files("greet");
        let names: Vec<&str> = files.iter().map(|(f, _)| f.as_str()).collect();
        for wanted in [
            "app.py",
            "test_app.py",
            "wit/world.wit",
            "wit/deps/flowmesh-executor/executor.wit",
            "wit/deps/flowmesh-host/llm.wit",
            "flowmesh_sdk/__init__.py",
            "requirements.txt",
            "examples/task.yaml",
        ] {
            assert!(names.contains(&wanted), "{wanted} in {names:?}");
        }
        let requirements = &files
            .iter()
            .find(|(f, _)| f == "requirements.txt")
            .expect("listed")
            .1;
        assert!(requirements.contains("componentize-py==0.25.1"));
    }
}
