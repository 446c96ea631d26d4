//! The API keeps its OpenAPI contract: `scripts/contract.sh` runs
//! schemathesis (every phase, a tenant's token then an admin's) against a
//! live `flowmesh up` of this build, and any failure of any check fails this
//! test. The checks switched off, each for named operations and with its
//! reason, are in `.ci/schemathesis.toml`.

use std::path::Path;
use std::process::Command;

#[test]
fn the_api_keeps_its_openapi_contract() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = Command::new(root.join("scripts/contract.sh"))
        .env("FLOWMESH_BIN", env!("CARGO_BIN_EXE_flowmesh"))
        .output()
        .expect("scripts/contract.sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found the API off its contract:\n{stdout}\n{stderr}"
    );
    // The summary lines, for the log of a passing run.
    for line in stdout.lines().filter(|line| {
        line.contains("generated,") || line.starts_with("== schemathesis") || line.contains("Seed:")
    }) {
        eprintln!("{line}");
    }
}
