//! Builds the first-party plugins and every guest fixture in `guests/` into
//! components, and generates `components.rs`: one path constant per component
//! and a `foreach_guest!` macro that the sandbox tests use to make sure every
//! fixture has a test. The Python plugins (`plugins/text`) and fixtures
//! (`guests-python/`) are built with componentize-py, under
//! `components::python`.

use std::fmt::Write as _;
use std::path::Path;

/// Python components: `(name, folder)`.
const PYTHON: &[(&str, &str)] = &[
    ("text", "plugins/text"),
    ("hostile", "tests/guests-python/hostile"),
    ("uses-llm", "tests/guests-python/uses-llm"),
    ("uses-gpu", "tests/guests-python/uses-gpu"),
];

const PLUGINS: &[&str] = &[
    "flowmesh-plugin-echo",
    "flowmesh-plugin-container",
    "flowmesh-plugin-inference",
    "flowmesh-plugin-train",
];

fn main() {
    let tests_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = tests_dir
        .parent()
        .expect("tests/ lives in the workspace root");
    let mut guests: Vec<String> = std::fs::read_dir(tests_dir.join("guests"))
        .expect("tests/guests exists")
        .filter_map(Result::ok)
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    guests.sort();
    let packages: Vec<String> = PLUGINS
        .iter()
        .map(|p| p.to_string())
        .chain(guests.iter().map(|g| format!("flowmesh-guest-{g}")))
        .collect();
    let package_refs: Vec<&str> = packages.iter().map(String::as_str).collect();
    let built = match flowmesh_wasm_build::build_components(
        workspace,
        &package_refs,
        &["plugins", "tests/guests", "tests/guest-support"],
    ) {
        Ok(built) => built,
        Err(error) => panic!("building the test components failed: {error}"),
    };

    let mut out = String::new();
    for plugin in PLUGINS {
        let constant = plugin
            .trim_start_matches("flowmesh-plugin-")
            .to_uppercase()
            .replace('-', "_");
        writeln!(out, "/// Component of `{plugin}`.").ok();
        writeln!(
            out,
            "pub const {constant}: &str = {:?};",
            built[*plugin].display().to_string()
        )
        .ok();
    }
    writeln!(
        out,
        "/// Guest fixtures: one component per folder of `tests/guests`."
    )
    .ok();
    writeln!(out, "pub mod guests {{").ok();
    for guest in &guests {
        let path = &built[&format!("flowmesh-guest-{guest}")];
        writeln!(out, "    /// Component of fixture `{guest}`.").ok();
        writeln!(
            out,
            "    pub const {}: &str = {:?};",
            guest.to_uppercase().replace('-', "_"),
            path.display().to_string()
        )
        .ok();
    }
    writeln!(out, "}}").ok();

    let built_python = match flowmesh_wasm_build::build_python_components(workspace, PYTHON) {
        Ok(built) => built,
        Err(error) => panic!("building the Python test components failed: {error}"),
    };
    writeln!(
        out,
        "/// Python components, built by componentize-py on `sdk/python`."
    )
    .ok();
    writeln!(out, "pub mod python {{").ok();
    for (name, dir) in PYTHON {
        writeln!(out, "    /// Component of `{dir}`.").ok();
        writeln!(
            out,
            "    pub const {}: &str = {:?};",
            name.to_uppercase().replace('-', "_"),
            built_python[*name].display().to_string()
        )
        .ok();
    }
    writeln!(out, "}}").ok();
    writeln!(
        out,
        "/// Calls `$mac!(fixture_name)` for every guest fixture."
    )
    .ok();
    writeln!(
        out,
        "#[macro_export]\nmacro_rules! foreach_guest {{\n    ($mac:ident) => {{"
    )
    .ok();
    for guest in &guests {
        writeln!(out, "        $mac!({});", guest.replace('-', "_")).ok();
    }
    writeln!(out, "    }};\n}}").ok();
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out_dir).join("components.rs"), out).expect("OUT_DIR is writable");
}
