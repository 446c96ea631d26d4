//! What the host has, detected rather than configured.

use flowmesh_types::api::Hardware;

/// CPUs available to this process and the host's memory. GPUs are not
/// detected yet (no NVML probe): the list is empty.
pub fn detect() -> Hardware {
    Hardware {
        cpus: std::thread::available_parallelism().map_or(1, |count| count.get()) as f64,
        memory_bytes: total_memory().unwrap_or(0),
        gpus: Vec::new(),
    }
}

/// `MemTotal` from `/proc/meminfo`.
fn total_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The host name, for the default worker name.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "worker".to_string())
}
