//! Test fixture `uses-containers`: Runs a container through flowmesh:host/containers; only workers with Docker may load it.

flowmesh_guest_support::fixture! {
    name: "uses-containers",
    description: "Runs a container through flowmesh:host/containers; only workers with Docker may load it.",
    spec: {},
    output: String,
    execute: |_spec| {
        use flowmesh_guest_support::flowmesh_sdk::host::containers;
        let request = containers::RunRequest {
            image: "busybox:latest".into(),
            entrypoint: Vec::new(),
            command: vec!["true".into()],
            env: Vec::new(),
            workdir: None,
            scratch_mount: None,
            memory_bytes: None,
            cpus: None,
            timeout_ms: None,
            network: false,
        };
        match containers::run(&request) {
            Ok(result) => Ok(format!("exit code {}", result.exit_code)),
            Err(error) => Err(TaskError::failed(format!("{error:?}"))),
        }
    }
}
