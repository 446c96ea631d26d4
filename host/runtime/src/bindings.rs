#![allow(missing_docs, unused_qualifications, unsafe_code)]

//! Host-side bindings of the FlowMesh WIT packages.
//!
//! Generated from the `flowmesh:executor/plugin-full` world, so the host traits
//! of every `flowmesh:host` interface exist here — `log` and `progress`
//! implemented by this crate, the optional capabilities (`containers`, `gpu`,
//! `llm`) by the [`Capability`](crate::Capability) that provides each. Each
//! interface has its own `add_to_linker`, which is how a worker's linker ends
//! up defining exactly the interfaces it really provides.

wasmtime::component::bindgen!({
    path: ["../../wit/host", "../../wit/executor"],
    world: "flowmesh:executor/plugin-full",
    // Capabilities that wait on the network or a daemon are async on the host;
    // to the guest every import is an ordinary blocking call.
    imports: {
        "flowmesh:host/containers": async,
        "flowmesh:host/llm": async,
    },
    exports: { default: async },
});
