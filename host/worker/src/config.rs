//! How a worker runs: [`WorkerConfig`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use flowmesh_runtime::Probe;
use flowmesh_types::api::Hardware;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The server's base URL (`http://host:7380`).
    pub server: String,
    /// A worker token.
    pub token: String,
    /// A CA certificate (PEM) to trust for an `https://` server besides the
    /// system's roots: the one `--tls-self-signed` made, say.
    pub ca_cert: Option<std::path::PathBuf>,
    /// Stable name; registering again under it replaces the old registration.
    pub name: String,
    /// Tasks run at once.
    pub slots: u32,
    /// The most tasks claimed ahead beyond the slots, each to start as a
    /// slot frees without a round trip to the server; `None` for a quarter
    /// of the slots (at least 1). At most eight times `slots`
    /// ([`READ_AHEAD_PER_SLOT`](flowmesh_types::api::READ_AHEAD_PER_SLOT)).
    /// Within it the worker holds ahead what its slots finish during one
    /// round trip (see `pace.rs`).
    pub read_ahead: Option<u32>,
    /// Operator labels.
    pub labels: BTreeMap<String, String>,
    /// Detected hardware.
    pub hardware: Hardware,
    /// How long one claim long-poll waits. Default 20 s.
    pub claim_wait: Duration,
    /// The host capabilities to look for: probed before registering and
    /// every [`probe_interval`](Self::probe_interval) after.
    pub probes: Vec<Arc<dyn Probe>>,
    /// How often capabilities are probed again. Default 10 s.
    pub probe_interval: Duration,
}

impl WorkerConfig {
    /// The most tasks claimed ahead: see [`WorkerConfig::read_ahead`].
    pub fn read_ahead(&self) -> u32 {
        self.read_ahead
            .unwrap_or_else(|| self.quarter_of_slots())
            .min(flowmesh_types::api::max_read_ahead(self.slots))
    }

    /// The read-ahead before the worker has timed a task and a round trip:
    /// a quarter of the slots (at least 1), within [`Self::read_ahead`].
    pub(crate) fn initial_read_ahead(&self) -> u32 {
        self.quarter_of_slots().min(self.read_ahead())
    }

    fn quarter_of_slots(&self) -> u32 {
        self.slots.div_ceil(4).max(1)
    }

    /// Defaults for `server` and `token`: the host's name, one slot per CPU,
    /// detected hardware.
    pub fn new(server: impl Into<String>, token: impl Into<String>) -> Self {
        let hardware = crate::hardware::detect();
        Self {
            server: server.into(),
            token: token.into(),
            ca_cert: None,
            name: crate::hardware::host_name(),
            slots: (hardware.cpus as u32).max(1),
            read_ahead: None,
            labels: BTreeMap::new(),
            hardware,
            claim_wait: Duration::from_secs(20),
            probes: Vec::new(),
            probe_interval: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(slots: u32, read_ahead: Option<u32>) -> WorkerConfig {
        let mut config = WorkerConfig::new("http://127.0.0.1:1", "token");
        config.slots = slots;
        config.read_ahead = read_ahead;
        config
    }

    #[test]
    fn the_read_ahead_defaults_to_a_quarter_of_the_slots() {
        assert_eq!(config(16, None).read_ahead(), 4);
        assert_eq!(config(1, None).read_ahead(), 1);
    }

    #[test]
    fn the_read_ahead_is_at_most_eight_per_slot() {
        assert_eq!(config(16, Some(128)).read_ahead(), 128);
        assert_eq!(config(16, Some(1_000)).read_ahead(), 128);
        assert_eq!(config(2, Some(17)).read_ahead(), 16);
        assert_eq!(config(16, Some(0)).read_ahead(), 0);
    }
}
