//! Test fixture `uses-gpu`: Reads its assigned GPUs through flowmesh:host/gpu; only workers with GPUs may load it.

flowmesh_guest_support::fixture! {
    name: "uses-gpu",
    description: "Reads its assigned GPUs through flowmesh:host/gpu; only workers with GPUs may load it.",
    spec: {
        /// How long to hold the devices, in milliseconds.
        #[serde(default)]
        hold_ms: u64,
    },
    output: Vec<String>,
    execute: |spec| {
        use flowmesh_guest_support::flowmesh_sdk::host::gpu;
        let devices = gpu::assigned().map_err(|error| TaskError::failed(format!("{error:?}")))?;
        std::thread::sleep(std::time::Duration::from_millis(spec.hold_ms));
        Ok(devices.into_iter().map(|device| format!("{} {}", device.uuid, device.name)).collect())
    }
}
