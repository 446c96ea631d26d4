//! Test fixture `panic`: Panics.

flowmesh_guest_support::fixture! {
    name: "panic",
    description: "Panics.",
    spec: {},
    output: (),
    execute: |_spec| {
        panic!("the panic fixture panics on purpose")
    }
}
