//! Runtime configuration: the engine, the instance pool, the default task limits.
//!
//! Every default is stated on its field. Nothing is granted to a task beyond
//! its scratch directory, whatever the configuration says.

use std::path::PathBuf;
use std::time::Duration;

/// How a [`Runtime`](crate::Runtime) is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled components are cached. Created if missing.
    pub cache_dir: PathBuf,
    /// Where per-task scratch directories are created (one fresh directory per
    /// task, removed after it). Created if missing.
    pub scratch_root: PathBuf,
    /// The pre-allocated instance pool.
    pub pool: PoolConfig,
    /// How often the epoch ticker fires. Timeouts and cancellation interrupt
    /// running guest code within about one tick. Default 10 ms.
    pub epoch_tick: Duration,
    /// Whether fuel metering is compiled in, so that [`TaskLimits::fuel`] can
    /// bound the number of instructions a task runs. Costs some speed on every
    /// task. Default off.
    pub fuel_metering: bool,
    /// Maximum guest call-stack size in bytes; deeper recursion traps with a
    /// stack overflow. Default 512 KiB.
    pub max_wasm_stack: usize,
    /// Limits of the runtime's own calls into plugins — `describe()` when a
    /// plugin is loaded and `validate()`: memory, fuel when metered — and a sensible base for
    /// [`TaskRequest::limits`](crate::TaskRequest::limits).
    pub default_limits: TaskLimits,
    /// Time allowed for a plugin's `describe()` when it is loaded. Default
    /// 10 s.
    pub describe_timeout: Duration,
    /// Time allowed for each `validate()` call: it runs while a client waits
    /// for its submit, so it must be short. Default 2 s.
    pub validate_timeout: Duration,
    /// How often a running task's scratch directory is measured against
    /// [`TaskLimits::scratch_bytes`]. A task can overshoot its limit by what
    /// it writes in one interval. Default 250 ms.
    pub scratch_check_interval: Duration,
}

impl RuntimeConfig {
    /// A configuration with every default, caching compiled components in
    /// `cache_dir` and creating task scratch directories under `scratch_root`.
    pub fn new(cache_dir: impl Into<PathBuf>, scratch_root: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            scratch_root: scratch_root.into(),
            pool: PoolConfig::default(),
            epoch_tick: Duration::from_millis(10),
            fuel_metering: false,
            max_wasm_stack: 512 * 1024,
            default_limits: TaskLimits::default(),
            describe_timeout: Duration::from_secs(10),
            validate_timeout: Duration::from_secs(2),
            scratch_check_interval: Duration::from_millis(250),
        }
    }
}

/// Sizes of wasmtime's pooling allocator: every instance slot, memory and stack
/// is reserved up front, so instantiating a task costs no `mmap`.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// How many plugin instances may be alive at once (running tasks plus
    /// `describe`/`validate` calls); further calls wait for a free slot.
    /// Default 128.
    pub max_instances: u32,
    /// The largest linear memory any task may grow to, in bytes; a task's own
    /// memory limit is capped by it. Default 4 GiB.
    pub max_memory_bytes: usize,
    /// Core module instances one component may create. Default 32.
    pub max_core_instances_per_component: u32,
    /// Linear memories one component may define. Default 2.
    pub max_memories_per_component: u32,
    /// Tables one component may define. Default 8.
    pub max_tables_per_component: u32,
    /// Bytes of each linear memory kept mapped between tasks and reset in
    /// place rather than unmapped: with it, reusing a slot costs no page
    /// faults. Only pages a task dirtied are reset where the kernel supports
    /// `PAGEMAP_SCAN` (Linux 6.7+). Default 4 MiB.
    pub keep_resident_bytes: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_instances: 128,
            max_memory_bytes: 4 << 30,
            max_core_instances_per_component: 32,
            max_memories_per_component: 2,
            max_tables_per_component: 8,
            keep_resident_bytes: 4 << 20,
        }
    }
}

/// What one task may use. Exceeding any limit fails that task alone, with an
/// error naming the limit.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskLimits {
    /// Wall-clock time from instantiation to result. Default 5 min.
    pub timeout: Duration,
    /// Linear memory of the plugin instance, in bytes. Default 256 MiB.
    pub memory_bytes: usize,
    /// Memory the containers it starts may use, in bytes (the task's
    /// `resources.hardware.memory`); 0 for no limit. Default 0.
    pub container_memory_bytes: u64,
    /// CPU cores the containers it starts may use (fractions allowed); 0
    /// for no limit. Default 0.
    pub cpus: f64,
    /// The GPUs assigned to the task, by NVML UUID: the only devices its
    /// containers see. Default none.
    pub gpus: Vec<String>,
    /// Instruction budget, when the runtime was built with
    /// [`RuntimeConfig::fuel_metering`]; unlimited when `None`. Default `None`.
    pub fuel: Option<u64>,
    /// Size of the JSON output, in bytes. Default 1 MiB.
    pub max_output_bytes: usize,
    /// Bytes the task may keep in its scratch directory; checked every
    /// [`RuntimeConfig::scratch_check_interval`]. Default 1 GiB.
    pub scratch_bytes: u64,
    /// Total size of log records (plugin logs, stdout and stderr together), in
    /// bytes; past it records are dropped and one truncation notice is logged.
    /// Default 1 MiB.
    pub max_log_bytes: usize,
}

impl Default for TaskLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(300),
            memory_bytes: 256 << 20,
            container_memory_bytes: 0,
            cpus: 0.0,
            gpus: Vec::new(),
            fuel: None,
            max_output_bytes: 1 << 20,
            scratch_bytes: 1 << 30,
            max_log_bytes: 1 << 20,
        }
    }
}
