//! Prometheus metrics. Counters and histograms are updated as things happen;
//! queue depth and workers are read from the store at scrape time.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `task_type`, `state`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeState {
    /// Task type.
    pub task_type: String,
    /// State.
    pub state: String,
}

/// `task_type`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    /// Task type.
    pub task_type: String,
}

/// `plugin`, `outcome`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginOutcome {
    /// Plugin name.
    pub plugin: String,
    /// `succeeded` or `failed`.
    pub outcome: String,
}

/// `state`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// Terminal state.
    pub state: String,
}

/// `verdict`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabel {
    /// `accepted`, or `stale_lease` for an outcome fenced out.
    pub verdict: String,
}

/// `capability`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CapabilityLabel {
    /// Capability name (`containers`, `gpu`, `llm`), or `any`.
    pub capability: String,
}

/// Every metric the server exports.
pub struct Metrics {
    /// Every metric below, registered once; read-only afterwards.
    registry: Registry,
    /// Tasks by type and state (set at scrape).
    pub queue_depth: Family<TypeState, Gauge>,
    /// Live workers by capability (set at scrape).
    pub workers: Family<CapabilityLabel, Gauge>,
    /// Live workers advertising each task type (set at scrape).
    pub workers_by_task_type: Family<TypeLabel, Gauge>,
    /// Tasks submitted.
    pub submitted: Family<TypeLabel, Counter>,
    /// Tasks that reached a terminal state, by state.
    pub finished: Family<StateLabel, Counter>,
    /// Seconds a worker's round trip that claims spent in the store: its
    /// wait for the writer and the transaction it ran in.
    pub claim_seconds: Histogram,
    /// Tasks handed out by claims.
    pub claimed: Counter,
    /// Attempt durations reported by workers, by plugin and outcome.
    pub task_seconds: Family<PluginOutcome, Histogram>,
    /// Leases that expired.
    pub leases_expired: Counter,
    /// Outcomes workers delivered that were accepted (the `accepted` child
    /// of `completions_total`, held so a completion costs no lookup).
    pub completions_accepted: Counter,
    /// Outcomes refused because the lease was no longer the sender's (the
    /// `stale_lease` child).
    pub completions_stale: Counter,
    /// Workflows submitted.
    pub workflows_submitted: Counter,
    /// Workflows that finished, by state.
    pub workflows_finished: Family<StateLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("flowmesh");
        let queue_depth = Family::<TypeState, Gauge>::default();
        registry.register(
            "queue_depth",
            "Tasks by type and state",
            queue_depth.clone(),
        );
        let workers = Family::<CapabilityLabel, Gauge>::default();
        registry.register("workers", "Live workers by capability", workers.clone());
        let workers_by_task_type = Family::<TypeLabel, Gauge>::default();
        registry.register(
            "workers_by_task_type",
            "Live workers advertising each task type",
            workers_by_task_type.clone(),
        );
        let submitted = Family::<TypeLabel, Counter>::default();
        registry.register("tasks_submitted", "Tasks submitted", submitted.clone());
        let finished = Family::<StateLabel, Counter>::default();
        registry.register(
            "tasks_finished",
            "Tasks finished, by state",
            finished.clone(),
        );
        let claim_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "claim_duration_seconds",
            "Time a claiming round trip spent in the store, its wait for the writer included",
            claim_seconds.clone(),
        );
        let claimed = Counter::default();
        registry.register("tasks_claimed", "Tasks handed to workers", claimed.clone());
        let task_seconds = Family::<PluginOutcome, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 4.0, 12))
        });
        registry.register(
            "task_duration_seconds",
            "Attempt wall time reported by workers",
            task_seconds.clone(),
        );
        let leases_expired = Counter::default();
        registry.register(
            "leases_expired",
            "Leases that expired",
            leases_expired.clone(),
        );
        let completions = Family::<VerdictLabel, Counter>::default();
        registry.register(
            "completions",
            "Outcomes delivered by workers, by verdict (stale_lease: fenced out)",
            completions.clone(),
        );
        let verdict = |verdict: &str| {
            completions
                .get_or_create(&VerdictLabel {
                    verdict: verdict.to_string(),
                })
                .clone()
        };
        let completions_accepted = verdict("accepted");
        let completions_stale = verdict("stale_lease");
        let workflows_submitted = Counter::default();
        registry.register(
            "workflows_submitted",
            "Workflows submitted",
            workflows_submitted.clone(),
        );
        let workflows_finished = Family::<StateLabel, Counter>::default();
        registry.register(
            "workflows_finished",
            "Workflows finished, by state",
            workflows_finished.clone(),
        );
        Self {
            registry,
            queue_depth,
            workers,
            workers_by_task_type,
            submitted,
            finished,
            claim_seconds,
            claimed,
            task_seconds,
            leases_expired,
            completions_accepted,
            completions_stale,
            workflows_submitted,
            workflows_finished,
        }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}
