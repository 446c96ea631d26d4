//! Test fixture `stack-overflow`: Recurses without bound.

flowmesh_guest_support::fixture! {
    name: "stack-overflow",
    description: "Recurses without bound.",
    spec: {},
    output: u64,
    execute: |_spec| {
        Ok(descend(std::hint::black_box(1)))
    }
}

fn descend(depth: u64) -> u64 {
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    descend(depth + 1) + 1
}
