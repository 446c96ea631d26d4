//! Test fixture `fill-scratch`: writes to its scratch directory without end.

flowmesh_guest_support::fixture! {
    name: "fill-scratch",
    description: "Writes to its scratch directory without end.",
    spec: {},
    output: u64,
    execute: |_spec| {
        use std::io::Write;
        let mut file = std::fs::File::create("/scratch/fill")
            .map_err(|error| TaskError::failed(format!("cannot create /scratch/fill: {error}")))?;
        let chunk = vec![7u8; 1 << 20];
        let mut written = 0u64;
        loop {
            file.write_all(&chunk)
                .map_err(|error| TaskError::failed(format!("write failed after {written} bytes: {error}")))?;
            written += chunk.len() as u64;
        }
    }
}
