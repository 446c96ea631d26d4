//! Test fixture `memory-bomb`: Allocates until something stops it.

flowmesh_guest_support::fixture! {
    name: "memory-bomb",
    description: "Allocates until something stops it.",
    spec: {},
    output: usize,
    execute: |_spec| {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(std::hint::black_box(vec![1u8; 8 << 20]));
            if hoard.len() == usize::MAX {
                return Ok(hoard.len());
            }
        }
    }
}
