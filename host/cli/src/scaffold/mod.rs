//! `flowmesh plugin new NAME`: a plugin crate on `flowmesh-sdk`, ready to
//! build into a component that `flowmesh plugin install` accepts, with a
//! test of its own; with `--lang python`, a Python plugin folder instead
//! ([`python`]).
//!
//! The crate is its own workspace (it builds wherever it is created). It
//! depends on the SDK by path when this `flowmesh` was built from a source
//! tree that is still there (or `--sdk PATH` names one), else on the SDK's
//! git repository.

use std::path::{Path, PathBuf};

use crate::error::{CliError, CliResult};

mod python;

/// Where the SDK of the source tree this binary was built from lives.
const BUILT_FROM_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sdk");

/// The SDK's repository, for crates created away from a source tree.
const SDK_GIT: &str = env!("CARGO_PKG_REPOSITORY");

/// `flowmesh plugin new` options.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The plugin's name (lowercase letters, digits, '-'); also its first
    /// task type.
    name: String,
    /// Directory to create (default: ./NAME).
    #[arg(long)]
    path: Option<PathBuf>,
    /// The flowmesh-sdk crate to depend on, by path (Rust).
    #[arg(long, value_name = "PATH")]
    sdk: Option<PathBuf>,
    /// The plugin's language.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
}

/// A language plugins are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A crate on flowmesh-sdk, built by cargo for wasm32-wasip2.
    Rust,
    /// A module on the Python SDK, built by componentize-py.
    Python,
}

pub(crate) fn run(args: NewArgs) -> CliResult {
    let name = args.name.as_str();
    if !is_crate_name(name) {
        return Err(CliError::usage(format!(
            "{name:?} is not a usable plugin name: {}, not ending in '-'",
            flowmesh_types::NAME_RULE
        )));
    }
    let dir = args.path.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(true)
    {
        return Err(CliError::usage(format!(
            "{} already exists and is not empty; pick another --path",
            dir.display()
        )));
    }
    if args.lang == Lang::Python {
        let files = python::files(name);
        write_files(&dir, files.iter().map(|(f, t)| (f.as_str(), t.clone())))?;
        crate::outln!("created Python plugin {name} in {}", dir.display());
        crate::outln!();
        for step in python::next_steps(name, &dir) {
            crate::outln!("  {step}");
        }
        return Ok(());
    }
    let sdk = match args.sdk {
        Some(path) => Some(path),
        None => Path::new(BUILT_FROM_SDK)
            .join("Cargo.toml")
            .is_file()
            .then(|| PathBuf::from(BUILT_FROM_SDK)),
    };
    let sdk_dependency = match sdk {
        Some(path) => {
            let path = path
                .canonicalize()
                .map_err(|error| CliError::usage(format!("--sdk {}: {error}", path.display())))?;
            if !path.join("Cargo.toml").is_file() {
                return Err(CliError::usage(format!(
                    "--sdk {}: no Cargo.toml there; point at the sdk/ folder of a FlowMesh checkout",
                    path.display()
                )));
            }
            format!("{{ path = {:?} }}", path.display().to_string())
        }
        None => format!("{{ git = {SDK_GIT:?} }}"),
    };
    let files = [
        ("Cargo.toml", cargo_toml(name, &sdk_dependency)),
        ("src/lib.rs", lib_rs(name)),
        ("examples/task.yaml", example_task(name)),
        ("README.md", readme(name)),
        (".gitignore", "/target\n".to_string()),
    ];
    write_files(&dir, files)?;
    let component = format!(
        "target/wasm32-wasip2/release/{}.wasm",
        name.replace('-', "_")
    );
    crate::outln!("created plugin {name} in {}", dir.display());
    crate::outln!();
    crate::outln!("  cd {}", dir.display());
    crate::outln!(
        "  cargo test                                        # its own tests, on this machine"
    );
    crate::outln!(
        "  flowmesh plugin build                             # the component (cargo, wasm32-wasip2)"
    );
    crate::outln!("  flowmesh plugin install {component}");
    crate::outln!("  flowmesh task submit examples/task.yaml --wait");
    Ok(())
}

/// Writes `files` (`(path in dir, contents)`), creating folders.
fn write_files<'a>(dir: &Path, files: impl IntoIterator<Item = (&'a str, String)>) -> CliResult {
    for (file, contents) in files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| {
                CliError::Other(anyhow::anyhow!("creating {}: {error}", parent.display()))
            })?;
        }
        std::fs::write(&path, contents).map_err(|error| {
            CliError::Other(anyhow::anyhow!("writing {}: {error}", path.display()))
        })?;
    }
    Ok(())
}

/// A name that is both a FlowMesh plugin/task type name and a crate name.
fn is_crate_name(name: &str) -> bool {
    flowmesh_types::is_valid_name(name) && !name.ends_with('-')
}

pub(crate) fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn cargo_toml(name: &str, sdk: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the WebAssembly component; rlib: so `cargo test` runs on this machine.
crate-type = ["cdylib", "rlib"]

[dependencies]
flowmesh-sdk = {sdk}
serde = {{ version = "1", features = ["derive"] }}
schemars = "1.2"

[profile.release]
opt-level = "s"
lto = true
strip = true

# A plugin is a workspace of its own: it builds wherever it lives.
[workspace]
"#
    )
}

fn lib_rs(name: &str) -> String {
    let ty = type_name(name);
    format!(
        r#"//! The `{name}` FlowMesh plugin.
//!
//! A plugin declares task types. Each has a spec (the plugin-owned fields of
//! a task document, checked against the JSON Schema derived from the spec
//! type), a `validate` that runs on the server at submit time, and an
//! `execute` that runs on a worker in a fresh sandbox.

use flowmesh_sdk::{{FieldError, Plugin, TaskError, TaskInfo, TaskType, TaskTypes}};
use schemars::JsonSchema;
use serde::{{Deserialize, Serialize}};

/// The `{name}` task type: greets someone.
pub struct {ty};

/// Spec of a `{name}` task.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct {ty}Spec {{
    /// Who to greet.
    pub name: String,
    /// How many exclamation marks (0 to 10).
    #[serde(default)]
    pub excitement: u8,
}}

/// Output of a `{name}` task.
#[derive(Debug, Serialize, PartialEq)]
pub struct {ty}Output {{
    /// The greeting.
    pub greeting: String,
}}

impl TaskType for {ty} {{
    const NAME: &'static str = "{name}";
    const DESCRIPTION: &'static str = "Greets someone.";
    type Spec = {ty}Spec;
    type Output = {ty}Output;

    fn validate(spec: &{ty}Spec) -> Result<(), Vec<FieldError>> {{
        let mut errors = Vec::new();
        if spec.name.trim().is_empty() {{
            errors.push(FieldError::new("name", "must not be empty"));
        }}
        if spec.excitement > 10 {{
            errors.push(FieldError::new("excitement", "must be at most 10"));
        }}
        if errors.is_empty() {{ Ok(()) }} else {{ Err(errors) }}
    }}

    fn execute(spec: {ty}Spec, _task: &TaskInfo) -> Result<{ty}Output, TaskError> {{
        // Log lines and progress reach the task's event stream through
        // flowmesh_sdk::log and flowmesh_sdk::progress (inside a worker).
        Ok({ty}Output {{
            greeting: format!("Hello, {{}}{{}}", spec.name, "!".repeat(spec.excitement.into())),
        }})
    }}
}}

/// The plugin: its name, version, and task types.
pub struct {ty}Plugin;

impl Plugin for {ty}Plugin {{
    const NAME: &'static str = "{name}";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Greets people.";

    fn task_types(types: &mut TaskTypes) {{
        types.add::<{ty}>();
    }}
}}

flowmesh_sdk::export!({ty}Plugin);

#[cfg(test)]
mod tests {{
    use super::*;

    fn spec(name: &str, excitement: u8) -> {ty}Spec {{
        {ty}Spec {{ name: name.to_string(), excitement }}
    }}

    #[test]
    fn greets() {{
        let task = TaskInfo {{ id: "t1".into(), task_type: "{name}".into(), attempt: 1 }};
        let output = {ty}::execute(spec("Ada", 2), &task).expect("greets");
        assert_eq!(output.greeting, "Hello, Ada!!");
    }}

    #[test]
    fn rejects_an_empty_name_and_too_much_excitement() {{
        let errors = {ty}::validate(&spec(" ", 11)).expect_err("invalid");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["name", "excitement"]);
    }}
}}
"#
    )
}

pub(crate) fn example_task(name: &str) -> String {
    format!(
        "apiVersion: flowmesh/v1\nkind: Task\nmetadata:\n  name: first-{name}\nspec:\n  taskType: {name}\n  name: FlowMesh\n  excitement: 1\n"
    )
}

fn readme(name: &str) -> String {
    let component = name.replace('-', "_");
    format!(
        "# {name}\n\nA FlowMesh plugin.\n\n```sh\ncargo test                                       # unit tests, on this machine\ncargo build --release --target wasm32-wasip2    # the component\nflowmesh plugin install target/wasm32-wasip2/release/{component}.wasm\nflowmesh task submit examples/task.yaml --wait\n```\n\nThe target is added with `rustup target add wasm32-wasip2`.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_suit_both_crates_and_task_types() {
        assert!(is_crate_name("greet"));
        assert!(is_crate_name("image-resize2"));
        for bad in ["", "Greet", "2fast", "a_b", "trailing-", "a.b"] {
            assert!(!is_crate_name(bad), "{bad}");
        }
    }

    #[test]
    fn type_names_are_camel_case() {
        assert_eq!(type_name("image-resize"), "ImageResize");
        assert_eq!(type_name("greet"), "Greet");
    }
}
