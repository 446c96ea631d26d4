//! Test fixture `escape-filesystem`: Tries to read files outside its scratch directory.

flowmesh_guest_support::fixture! {
    name: "escape-filesystem",
    description: "Tries to read files outside its scratch directory.",
    spec: {},
    output: String,
    execute: |_spec| {
        let inherited = std::fs::read_dir("/scratch")
            .map_err(|error| TaskError::failed(format!("cannot list its own scratch: {error}")))?
            .count();
        if inherited != 0 {
            return Err(TaskError::failed(format!(
                "scratch holds {inherited} files from elsewhere"
            )));
        }
        std::fs::write("/scratch/probe.txt", b"scratch works")
            .map_err(|error| TaskError::failed(format!("cannot write its own scratch: {error}")))?;
        let own = std::fs::read_to_string("/scratch/probe.txt")
            .map_err(|error| TaskError::failed(format!("cannot read its own scratch: {error}")))?;
        let mut denied = Vec::new();
        for path in [
            "/etc/passwd",
            "/scratch/../etc/passwd",
            "../etc/passwd",
            "/proc/self/environ",
            "/",
        ] {
            match std::fs::read_to_string(path) {
                Ok(contents) => return Ok(format!("read {path}: {contents}")),
                Err(error) => denied.push(format!("{path}: {error}")),
            }
        }
        match std::fs::read_dir("/scratch/..") {
            Ok(entries) => return Ok(format!("listed /scratch/..: {} entries", entries.count())),
            Err(error) => denied.push(format!("/scratch/.. (list): {error}")),
        }
        Err(TaskError::failed(format!(
            "{own}; denied: {}",
            denied.join("; ")
        )))
    }
}
