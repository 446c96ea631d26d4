//! Builds plugin crates of this workspace into WebAssembly components.
//!
//! Build scripts that need real components — the end-to-end tests and their
//! hostile guest fixtures, benchmarks, binaries that embed the first-party
//! plugins — call [`build_components`] with the package names they need. It runs
//! one nested `cargo build --target wasm32-wasip2 --release` for all of them
//! in a target directory of its own (a nested cargo cannot share the outer
//! build's directory lock), and returns where each component landed.
//!
//! The outer build is told to rerun when the WIT contract, the SDK or any of
//! the built crates change.
//!
//! Python plugins are built by componentize-py ([`python`]);
//! [`build_python_components`] does it for build scripts, in a virtual
//! environment that `scripts/python.sh` makes when it is missing.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub mod python;

/// The Rust target plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Why components could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// The `wasm32-wasip2` standard library is not installed.
    MissingTarget,
    /// `cargo` could not be started.
    Spawn(std::io::Error),
    /// `cargo build` failed; its output was forwarded.
    Cargo(std::process::ExitStatus),
    /// The build succeeded but a component file is missing.
    MissingOutput(PathBuf),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingTarget => write!(
                f,
                "the {TARGET} target is not installed: run `rustup target add {TARGET}`"
            ),
            Self::Spawn(error) => write!(f, "could not run cargo: {error}"),
            Self::Cargo(status) => write!(
                f,
                "`cargo build --target {TARGET}` failed ({status}); its errors are above"
            ),
            Self::MissingOutput(path) => {
                write!(f, "cargo succeeded but {} is missing", path.display())
            }
        }
    }
}

impl std::error::Error for BuildError {}

/// Builds `packages` of the workspace at `workspace_root` for [`TARGET`] in
/// release mode and returns each package's component path, keyed by package
/// name.
///
/// Meant for build scripts: it prints `cargo:rerun-if-changed` lines for the
/// WIT contract, the SDK and what it depends on, the workspace manifest and
/// lock file, and `watch` (the folders holding the packages).
pub fn build_components(
    workspace_root: &Path,
    packages: &[&str],
    watch: &[&str],
) -> Result<BTreeMap<String, PathBuf>, BuildError> {
    for dir in ["wit", "sdk", "host/types", "Cargo.toml", "Cargo.lock"]
        .iter()
        .chain(watch)
    {
        println!(
            "cargo:rerun-if-changed={}",
            workspace_root.join(dir).display()
        );
    }
    ensure_target_installed()?;
    let target_dir = target_dir(workspace_root);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    for package in packages {
        command.args(["-p", package]);
    }
    // The outer build's compiler settings are for the host, not for the guests;
    // a clippy run must not lint (or fail on) the nested build either.
    for variable in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        command.env_remove(variable);
    }
    let status = command.status().map_err(BuildError::Spawn)?;
    if !status.success() {
        return Err(BuildError::Cargo(status));
    }
    packages
        .iter()
        .map(|package| {
            let file = format!("{}.wasm", package.replace('-', "_"));
            let path = target_dir.join(TARGET).join("release").join(file);
            if path.is_file() {
                Ok((package.to_string(), path))
            } else {
                Err(BuildError::MissingOutput(path))
            }
        })
        .collect()
}

/// `<target>/wasm32-components`, next to the outer build's own output.
fn target_dir(workspace_root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join("target"))
        .join("wasm32-components")
}

/// Installs the [`TARGET`] standard library with rustup when it is missing, so
/// that a fresh clone builds with plain `cargo` commands.
fn ensure_target_installed() -> Result<(), BuildError> {
    if target_installed() {
        return Ok(());
    }
    println!("cargo:warning=installing the {TARGET} target with `rustup target add {TARGET}`");
    let installed = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|status| status.success());
    if installed && target_installed() {
        Ok(())
    } else {
        Err(BuildError::MissingTarget)
    }
}

fn target_installed() -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|output| {
            let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
            Path::new(&sysroot)
                .join("lib/rustlib")
                .join(TARGET)
                .is_dir()
        })
        .unwrap_or(false)
}

/// Builds the Python plugins in `plugins` (`(name, folder)`, folders
/// relative to `workspace_root`) with componentize-py, each with the Python
/// SDK of this workspace on its module path, and returns each component's
/// path by name.
///
/// componentize-py is `$FLOWMESH_COMPONENTIZE_PY` when set, else the one in
/// the virtual environment `scripts/python.sh` prepares (creating it, from
/// PyPI, when missing). A component whose inputs have not changed since its
/// last build is not built again.
pub fn build_python_components(
    workspace_root: &Path,
    plugins: &[(&str, &str)],
) -> Result<BTreeMap<String, PathBuf>, python::PythonError> {
    let sdk = workspace_root.join("sdk/python");
    for dir in ["sdk/python", "wit", "scripts/python.sh"]
        .into_iter()
        .chain(plugins.iter().map(|(_, dir)| *dir))
    {
        println!(
            "cargo:rerun-if-changed={}",
            workspace_root.join(dir).display()
        );
    }
    println!("cargo:rerun-if-env-changed={}", python::COMPONENTIZE_PY_ENV);
    let tool = match std::env::var_os(python::COMPONENTIZE_PY_ENV) {
        Some(tool) => PathBuf::from(tool),
        None => python_venv(workspace_root)?.join("bin/componentize-py"),
    };
    let out = target_dir(workspace_root).with_file_name("python-components");
    let mut built = BTreeMap::new();
    for (name, dir) in plugins {
        let plugin = python::PythonPlugin {
            dir: workspace_root.join(dir),
            python_path: vec![sdk.clone()],
            output: out.join(format!("{name}.wasm")),
            staging: out.join(name),
        };
        let stamp = out.join(format!("{name}.inputs"));
        let inputs = python::fingerprint(&tool, &plugin);
        let fresh = plugin.output.is_file()
            && std::fs::read_to_string(&stamp).is_ok_and(|previous| previous == inputs);
        if !fresh {
            python::componentize(&tool, &plugin)?;
            std::fs::write(&stamp, &inputs).map_err(|source| python::PythonError::Io {
                what: format!("writing {}", stamp.display()),
                source,
            })?;
        }
        built.insert(name.to_string(), plugin.output);
    }
    Ok(built)
}

/// The virtual environment of `scripts/python.sh` (made when missing).
fn python_venv(workspace_root: &Path) -> Result<PathBuf, python::PythonError> {
    let script = workspace_root.join("scripts/python.sh");
    let output = Command::new(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|source| python::PythonError::Io {
            what: format!("running {}", script.display()),
            source,
        })?;
    if !output.status.success() {
        return Err(python::PythonError::NotInstalled);
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
    ))
}
