//! Test fixture `oversized-output`: Returns 2 MiB of output.

flowmesh_guest_support::fixture! {
    name: "oversized-output",
    description: "Returns 2 MiB of output.",
    spec: {},
    output: String,
    execute: |_spec| {
        Ok("x".repeat(2 << 20))
    }
}
