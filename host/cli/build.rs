//! Builds the first-party plugins into components and embeds them in the
//! binary, so `flowmesh up` can install them without any other file.

use std::fmt::Write as _;
use std::path::Path;

/// The first-party plugin packages `flowmesh up` installs.
const FIRST_PARTY: &[&str] = &[
    "flowmesh-plugin-echo",
    "flowmesh-plugin-container",
    "flowmesh-plugin-inference",
    "flowmesh-plugin-train",
];

fn main() {
    let cli_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = cli_dir
        .parent()
        .and_then(Path::parent)
        .expect("host/cli lives two levels below the workspace root");
    let built = match flowmesh_wasm_build::build_components(workspace, FIRST_PARTY, &["plugins"]) {
        Ok(built) => built,
        Err(error) => panic!("building the first-party plugins failed: {error}"),
    };
    let mut out = String::from(
        "/// The first-party plugin components: (package, bytes).\npub(crate) const FIRST_PARTY: &[(&str, &[u8])] = &[\n",
    );
    for package in FIRST_PARTY {
        let path = &built[*package];
        writeln!(
            out,
            "    ({package:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a string");
    }
    out.push_str("];\n");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out_dir).join("first_party.rs"), out)
        .expect("writing first_party.rs");
}
