//! Test fixture `read-env`: Reads its environment variables and arguments.

flowmesh_guest_support::fixture! {
    name: "read-env",
    description: "Reads its environment variables and arguments.",
    spec: {},
    output: Vec<String>,
    execute: |_spec| {
        let found: Vec<String> = std::env::vars()
            .map(|(name, value)| format!("{name}={value}"))
            .chain(std::env::args().map(|arg| format!("arg {arg}")))
            .collect();
        if found.is_empty() {
            Err(TaskError::failed(
                "no environment variables and no arguments are visible",
            ))
        } else {
            Ok(found)
        }
    }
}
