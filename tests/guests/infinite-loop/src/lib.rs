//! Test fixture `infinite-loop`: Spins forever; must be stopped by its deadline.

flowmesh_guest_support::fixture! {
    name: "infinite-loop",
    description: "Spins forever; must be stopped by its deadline.",
    spec: {},
    output: (),
    execute: |_spec| {
        loop {
            std::hint::black_box(());
        }
    }
}
