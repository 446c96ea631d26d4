//! Test fixture `trap`: Reads far outside its linear memory.
#![allow(unsafe_code)]

flowmesh_guest_support::fixture! {
    name: "trap",
    description: "Reads far outside its linear memory.",
    spec: {},
    output: u64,
    execute: |_spec| {
        let address = std::hint::black_box(0xffff_fff0_usize) as *const u64;
        // SAFETY: it is not; this fixture exists to make the host trap it.
        Ok(unsafe { std::ptr::read_volatile(address) })
    }
}
