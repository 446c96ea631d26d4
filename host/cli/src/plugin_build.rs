//! `flowmesh plugin build [DIR]`: one build command for a plugin in any
//! language. In a Rust plugin's folder (`Cargo.toml`) it runs cargo for
//! `wasm32-wasip2`; in a Python plugin's (`app.py`) it runs componentize-py
//! on the folder's WIT world, with the SDK of this FlowMesh version on the
//! module path when the folder does not carry one. Either way it prints the
//! installable component's path.

use std::path::{Path, PathBuf};
use std::process::Command;

use flowmesh_wasm_build::python::{
    self, COMPONENTIZE_PY_VERSION, PythonError, PythonPlugin, SDK_FILES,
};

use crate::error::{CliError, CliResult};

/// `flowmesh plugin build` options.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The plugin's folder.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Write the component to this file instead of the default (Python:
    /// build/FOLDER.wasm; Rust: cargo's target folder).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

pub(crate) fn run(args: BuildArgs) -> CliResult {
    let dir = &args.dir;
    if !dir.is_dir() {
        return Err(CliError::usage(format!(
            "{} is not a folder; run `flowmesh plugin build` in a plugin's folder, or name one",
            dir.display()
        )));
    }
    let component = if dir.join("Cargo.toml").is_file() {
        build_rust(dir, args.out.as_deref())?
    } else if dir.join("app.py").is_file() {
        build_python(dir, args.out.as_deref())?
    } else {
        return Err(CliError::usage(format!(
            "{} holds neither Cargo.toml (a Rust plugin) nor app.py (a Python plugin); \
             `flowmesh plugin new NAME [--lang python]` makes one",
            dir.display()
        )));
    };
    crate::outln!("{}", component.display());
    Ok(())
}

fn other(error: impl std::fmt::Display) -> CliError {
    CliError::Other(anyhow::anyhow!("{error}"))
}

fn build_python(dir: &Path, output: Option<&Path>) -> CliResult<PathBuf> {
    let tool = python::find_componentize_py(dir).map_err(|error| match error {
        PythonError::NotInstalled => CliError::usage(error.to_string()),
        other_error => other(other_error),
    })?;
    if let Some(version) = python::componentize_py_version(&tool)
        && version != COMPONENTIZE_PY_VERSION
    {
        eprintln!(
            "warning: {} is componentize-py {version}; this FlowMesh is tested with {COMPONENTIZE_PY_VERSION}",
            tool.display()
        );
    }
    let name = plugin_name(dir);
    // The staged WIT and SDK go to a folder of this build's own, removed after.
    let staging =
        std::env::temp_dir().join(format!("flowmesh-plugin-build-{}", std::process::id()));
    let mut python_path = Vec::new();
    if !dir.join("flowmesh_sdk").is_dir() {
        let sdk = staging.join("sdk");
        let package = sdk.join("flowmesh_sdk");
        std::fs::create_dir_all(&package)
            .map_err(|error| other(format!("creating {}: {error}", package.display())))?;
        for (file, text) in SDK_FILES {
            std::fs::write(package.join(file), text)
                .map_err(|error| other(format!("writing the SDK: {error}")))?;
        }
        python_path.push(sdk);
    }
    let plugin = PythonPlugin {
        dir: dir.to_path_buf(),
        python_path,
        output: output
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.join("build").join(format!("{name}.wasm"))),
        staging: staging.clone(),
    };
    eprintln!("building {} with {}", dir.display(), tool.display());
    let built = python::componentize(&tool, &plugin).map_err(other);
    let _ = std::fs::remove_dir_all(&staging);
    built
}

/// The folder's name, as a file name: how the component is called.
fn plugin_name(dir: &Path) -> String {
    dir.canonicalize()
        .ok()
        .and_then(|path| {
            path.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "plugin".into())
}

fn build_rust(dir: &Path, output: Option<&Path>) -> CliResult<PathBuf> {
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))
        .map_err(|error| other(format!("reading Cargo.toml: {error}")))?;
    let package: toml::Table = manifest
        .parse()
        .map_err(|error| CliError::usage(format!("Cargo.toml is not valid TOML: {error}")))?;
    let Some(crate_name) = package
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
    else {
        return Err(CliError::usage(
            "Cargo.toml has no [package] name: run `flowmesh plugin build` in the plugin crate's folder",
        ));
    };
    let target = flowmesh_wasm_build::TARGET;
    eprintln!("building {} with cargo for {target}", dir.display());
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(dir)
        .args(["build", "--release", "--target", target])
        .status()
        .map_err(|error| other(format!("could not run cargo: {error}")))?;
    if !status.success() {
        let hint = if status.code() == Some(101) {
            format!(" (is the target installed? `rustup target add {target}`)")
        } else {
            String::new()
        };
        return Err(other(format!(
            "cargo build failed ({status}); its errors are above{hint}"
        )));
    }
    let target_dir = cargo_target_dir(dir);
    let built = target_dir
        .join(target)
        .join("release")
        .join(format!("{}.wasm", crate_name.replace('-', "_")));
    if !built.is_file() {
        return Err(other(format!(
            "cargo succeeded but {} is missing: is the crate a cdylib?",
            built.display()
        )));
    }
    match output {
        Some(output) => {
            std::fs::copy(&built, output)
                .map_err(|error| other(format!("writing {}: {error}", output.display())))?;
            Ok(output.to_path_buf())
        }
        None => Ok(built),
    }
}

/// Where cargo writes the crate's output: its metadata's target directory.
fn cargo_target_dir(dir: &Path) -> PathBuf {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(dir)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .ok()
        .and_then(|out| serde_json::from_slice::<serde_json::Value>(&out.stdout).ok())
        .and_then(|meta| meta["target_directory"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| dir.join("target"))
}
