//! Test fixture `uses-containers`: Runs a container through flowmesh:host/containers; only workers with Docker may load it.

flowmesh_guest_support::fixture! {
    name: "uses-containers",
    description: "Runs a container through flowmesh:host/containers; only workers with Docker may load it.",
    spec: {
        /// The image (busybox:latest by default).
        #[serde(default)]
        image: Option<String>,
        /// The command (`true` by default).
        #[serde(default)]
        command: Vec<String>,
        /// The request's own timeout, in milliseconds.
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    output: String,
    execute: |spec| {
        use flowmesh_guest_support::flowmesh_sdk::host::containers;
        let request = containers::RunRequest {
            image: spec.image.unwrap_or_else(|| "busybox:latest".into()),
            entrypoint: Vec::new(),
            command: if spec.command.is_empty() { vec!["true".into()] } else { spec.command },
            env: Vec::new(),
            workdir: None,
            scratch_mount: None,
            memory_bytes: None,
            cpus: None,
            timeout_ms: spec.timeout_ms,
            network: false,
        };
        match containers::run(&request) {
            Ok(result) => Ok(format!("exit code {}", result.exit_code)),
            Err(error) => Err(TaskError::failed(format!("{error:?}"))),
        }
    }
}
