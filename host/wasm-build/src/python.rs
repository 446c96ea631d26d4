//! Python plugins: a Python module and a WIT world built into a component by
//! componentize-py.
//!
//! A Python plugin is a folder holding the app module (`app.py`, which
//! assigns `Executor = plugin.export()`), the modules it imports, and
//! `wit/world.wit`, the world it targets: `flowmesh:executor/plugin` plus
//! the capability interfaces it uses. The `flowmesh:executor` and
//! `flowmesh:host` packages of this FlowMesh version are added under
//! `wit/deps/` in a staging copy when the folder does not carry them, so an
//! in-tree plugin holds only its own world.
//!
//! componentize-py is found, in this order, at `$FLOWMESH_COMPONENTIZE_PY`,
//! in the plugin folder's `.venv/`, or on `PATH`; [`COMPONENTIZE_PY_VERSION`]
//! is the version this FlowMesh is tested with.

use std::fmt;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned requirements of a Python plugin's build and tests (one
/// requirement per line, pip's format).
pub const BUILD_REQUIREMENTS: &str = include_str!("../../../sdk/python/requirements-build.txt");

/// The componentize-py release Python plugins are built and tested with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// The environment variable naming the componentize-py to run.
pub const COMPONENTIZE_PY_ENV: &str = "FLOWMESH_COMPONENTIZE_PY";

/// The WIT packages of this FlowMesh version, as `(path under wit/deps, text)`.
pub const WIT_DEPS: &[(&str, &str)] = &[
    (
        "flowmesh-executor/executor.wit",
        include_str!("../../../wit/executor/executor.wit"),
    ),
    (
        "flowmesh-host/log.wit",
        include_str!("../../../wit/host/log.wit"),
    ),
    (
        "flowmesh-host/containers.wit",
        include_str!("../../../wit/host/containers.wit"),
    ),
    (
        "flowmesh-host/gpu.wit",
        include_str!("../../../wit/host/gpu.wit"),
    ),
    (
        "flowmesh-host/llm.wit",
        include_str!("../../../wit/host/llm.wit"),
    ),
];

/// The Python SDK of this FlowMesh version, as `(path under flowmesh_sdk/, text)`:
/// what `flowmesh plugin new --lang python` writes into a plugin's folder
/// and `flowmesh plugin build` puts on the module path of one without it.
pub const SDK_FILES: &[(&str, &str)] = &[
    (
        "__init__.py",
        include_str!("../../../sdk/python/flowmesh_sdk/__init__.py"),
    ),
    (
        "_errors.py",
        include_str!("../../../sdk/python/flowmesh_sdk/_errors.py"),
    ),
    (
        "_host.py",
        include_str!("../../../sdk/python/flowmesh_sdk/_host.py"),
    ),
    (
        "_plugin.py",
        include_str!("../../../sdk/python/flowmesh_sdk/_plugin.py"),
    ),
    (
        "_schema.py",
        include_str!("../../../sdk/python/flowmesh_sdk/_schema.py"),
    ),
    (
        "log.py",
        include_str!("../../../sdk/python/flowmesh_sdk/log.py"),
    ),
    (
        "llm.py",
        include_str!("../../../sdk/python/flowmesh_sdk/llm.py"),
    ),
    (
        "containers.py",
        include_str!("../../../sdk/python/flowmesh_sdk/containers.py"),
    ),
    (
        "gpu.py",
        include_str!("../../../sdk/python/flowmesh_sdk/gpu.py"),
    ),
];

/// The world of a plugin folder without `wit/`: the contract and no capability.
const DEFAULT_WORLD: &str =
    "package local:plugin;\n\nworld plugin {\n    include flowmesh:executor/plugin@0.1.0;\n}\n";

/// Why a Python plugin could not be built.
#[derive(Debug)]
pub enum PythonError {
    /// No componentize-py was found; the text says how to install it.
    NotInstalled,
    /// The plugin folder has no app module.
    NoApp(PathBuf),
    /// A file could not be read or written.
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// componentize-py failed; its output was forwarded.
    Componentize(std::process::ExitStatus),
}

impl fmt::Display for PythonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInstalled => write!(
                f,
                "componentize-py is not installed. In the plugin's folder run:\n\
                 \n    python3 -m venv .venv && .venv/bin/pip install componentize-py=={COMPONENTIZE_PY_VERSION}\n\
                 \nthen build again ({COMPONENTIZE_PY_ENV} may name another componentize-py)"
            ),
            Self::NoApp(path) => write!(
                f,
                "{} is missing: a Python plugin's folder holds app.py, which assigns `Executor = plugin.export()`",
                path.display()
            ),
            Self::Io { what, source } => write!(f, "{what}: {source}"),
            Self::Componentize(status) => {
                write!(f, "componentize-py failed ({status}); its errors are above")
            }
        }
    }
}

impl std::error::Error for PythonError {}

/// Finds componentize-py for the plugin in `plugin_dir` (see the module's
/// documentation for the order).
pub fn find_componentize_py(plugin_dir: &Path) -> Result<PathBuf, PythonError> {
    if let Some(named) = std::env::var_os(COMPONENTIZE_PY_ENV) {
        return Ok(PathBuf::from(named));
    }
    let venv = plugin_dir.join(".venv/bin/componentize-py");
    if venv.is_file() {
        return Ok(venv);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("componentize-py"))
        .find(|candidate| candidate.is_file())
        .ok_or(PythonError::NotInstalled)
}

/// The version a componentize-py reports (`0.25.1`), if it runs.
pub fn componentize_py_version(tool: &Path) -> Option<String> {
    let output = Command::new(tool).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace().last().map(str::to_string)
}

/// One Python plugin to build.
#[derive(Debug, Clone)]
pub struct PythonPlugin {
    /// The plugin's folder: `app.py`, and `wit/` when it has one.
    pub dir: PathBuf,
    /// More folders to find modules in (an SDK checkout, say), after `dir`.
    pub python_path: Vec<PathBuf>,
    /// Where the component is written.
    pub output: PathBuf,
    /// Where the WIT is staged (emptied first).
    pub staging: PathBuf,
}

/// Builds `plugin` with the componentize-py at `tool` and returns the
/// component's path. componentize-py's output goes to this process's.
pub fn componentize(tool: &Path, plugin: &PythonPlugin) -> Result<PathBuf, PythonError> {
    let app = plugin.dir.join("app.py");
    if !app.is_file() {
        return Err(PythonError::NoApp(app));
    }
    let wit = stage_wit(&plugin.dir.join("wit"), &plugin.staging)?;
    if let Some(parent) = plugin.output.parent() {
        std::fs::create_dir_all(parent).map_err(|source| PythonError::Io {
            what: format!("creating {}", parent.display()),
            source,
        })?;
    }
    let mut command = Command::new(tool);
    command.arg("-d").arg(&wit).arg("componentize");
    for path in std::iter::once(&plugin.dir).chain(&plugin.python_path) {
        command.arg("-p").arg(path);
    }
    command.arg("app").arg("-o").arg(&plugin.output);
    // The interpreter's own settings must not leak in from the caller, and
    // the plugin's folder is left as it was (no __pycache__).
    for variable in ["PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"] {
        command.env_remove(variable);
    }
    command.env("PYTHONDONTWRITEBYTECODE", "1");
    // Its chatter goes to stderr: a caller's stdout is for results (the
    // component's path; a build script's directives to cargo).
    if let Ok(stderr) = std::io::stderr().as_fd().try_clone_to_owned() {
        command.stdout(std::process::Stdio::from(stderr));
    }
    let status = command.status().map_err(|source| PythonError::Io {
        what: format!("running {}", tool.display()),
        source,
    })?;
    if !status.success() {
        return Err(PythonError::Componentize(status));
    }
    Ok(plugin.output.clone())
}

/// Copies the plugin's `wit/` (or a default world) to `staging/wit`, adding
/// the FlowMesh packages under `deps/` where the plugin does not carry them.
fn stage_wit(source: &Path, staging: &Path) -> Result<PathBuf, PythonError> {
    let io = |what: String| move |source| PythonError::Io { what, source };
    let wit = staging.join("wit");
    if wit.exists() {
        std::fs::remove_dir_all(&wit).map_err(io(format!("emptying {}", wit.display())))?;
    }
    std::fs::create_dir_all(&wit).map_err(io(format!("creating {}", wit.display())))?;
    if source.is_dir() {
        copy_tree(source, &wit)?;
    } else {
        std::fs::write(wit.join("world.wit"), DEFAULT_WORLD)
            .map_err(io(format!("writing {}", wit.display())))?;
    }
    // A package the plugin carries (a scaffolded plugin's copy) is its own.
    let carried: Vec<bool> = WIT_DEPS
        .iter()
        .map(|(file, _)| wit.join("deps").join(package_of(file)).is_dir())
        .collect();
    for ((file, text), carried) in WIT_DEPS.iter().zip(carried) {
        if carried {
            continue;
        }
        let path = wit.join("deps").join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&path, text).map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(wit)
}

fn package_of(file: &str) -> &str {
    file.split('/').next().unwrap_or(file)
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), PythonError> {
    let entries = std::fs::read_dir(from).map_err(|source| PythonError::Io {
        what: format!("reading {}", from.display()),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| PythonError::Io {
            what: format!("reading {}", from.display()),
            source,
        })?;
        let target = to.join(entry.file_name());
        let path = entry.path();
        if path.is_dir() {
            std::fs::create_dir_all(&target).map_err(|source| PythonError::Io {
                what: format!("creating {}", target.display()),
                source,
            })?;
            copy_tree(&path, &target)?;
        } else {
            std::fs::copy(&path, &target).map_err(|source| PythonError::Io {
                what: format!("copying {}", path.display()),
                source,
            })?;
        }
    }
    Ok(())
}

/// What a build of `plugin` by `tool` depends on, as text: every input
/// file's path, size and modification time, and the tool's. Equal texts
/// mean the last build's component still stands.
pub fn fingerprint(tool: &Path, plugin: &PythonPlugin) -> String {
    let mut files = Vec::new();
    for dir in std::iter::once(&plugin.dir).chain(&plugin.python_path) {
        list_files(dir, &mut files);
    }
    files.push(tool.to_path_buf());
    files.sort();
    let mut text = format!("componentize {COMPONENTIZE_PY_VERSION}\n");
    for (file, deps) in WIT_DEPS {
        text.push_str(&format!("{file} {}\n", deps.len()));
    }
    for file in files {
        if let Ok(meta) = std::fs::metadata(&file) {
            let modified = meta
                .modified()
                .ok()
                .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|since| since.as_nanos())
                .unwrap_or_default();
            text.push_str(&format!("{} {} {modified}\n", file.display(), meta.len()));
        }
    }
    text
}

/// Every file under `dir`, but caches, virtual environments and tests.
fn list_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "__pycache__" || name == "build" {
            continue;
        }
        if path.is_dir() {
            list_files(&path, files);
        } else {
            files.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sdk_module_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/python/flowmesh_sdk");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("the SDK's folder")
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".py"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = SDK_FILES.iter().map(|(f, _)| f.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "SDK_FILES must list every module");
    }

    #[test]
    fn every_wit_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
        let count = ["executor", "host"]
            .iter()
            .map(|dir| {
                std::fs::read_dir(root.join(dir))
                    .expect("wit folder")
                    .count()
            })
            .sum::<usize>();
        assert_eq!(WIT_DEPS.len(), count);
    }

    #[test]
    fn the_pinned_componentize_py_is_the_one_required() {
        assert!(
            BUILD_REQUIREMENTS.contains(&format!("componentize-py=={COMPONENTIZE_PY_VERSION}"))
        );
    }

    #[test]
    fn a_folder_without_wit_gets_the_contract_world_and_one_that_carries_its_deps_keeps_them() {
        let dir = tempfile_dir();
        let staged = stage_wit(&dir.join("none"), &dir.join("stage-a")).expect("stages");
        assert!(
            std::fs::read_to_string(staged.join("world.wit"))
                .expect("world")
                .contains("flowmesh:executor/plugin")
        );
        assert!(staged.join("deps/flowmesh-host/llm.wit").is_file());

        let own = dir.join("own/wit/deps/flowmesh-host");
        std::fs::create_dir_all(&own).expect("mkdir");
        std::fs::write(own.join("log.wit"), "// carried").expect("write");
        let staged = stage_wit(&dir.join("own/wit"), &dir.join("stage-b")).expect("stages");
        assert_eq!(
            std::fs::read_to_string(staged.join("deps/flowmesh-host/log.wit")).expect("read"),
            "// carried"
        );
        assert!(!staged.join("deps/flowmesh-host/llm.wit").exists());
        assert!(staged.join("deps/flowmesh-executor/executor.wit").is_file());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("flowmesh-wasm-build-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        dir
    }
}
