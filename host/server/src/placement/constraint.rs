//! The placement constraints, one rule each between a task and a worker.

use flowmesh_types::format_bytes;

use super::{Ask, Candidate};

/// One placement rule. The order of [`Constraint::ALL`] is the order
/// [`super::explain`] narrows the workers in: what a worker is (type,
/// labels, hardware), then what the task's history allows (retry delay,
/// the worker an attempt failed on), then what is free now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Constraint {
    /// The worker advertises the task type.
    TaskType,
    /// The worker is of the task's tenant's pool: registered with one of
    /// that tenant's worker tokens, or a shared worker when the tenant
    /// allows shared workers.
    Pool,
    /// The worker carries every label the task requires, with its value.
    Labels,
    /// The worker has at least the CPU asked for.
    Cpu,
    /// The worker has at least the memory asked for.
    Memory,
    /// The worker has enough GPUs of the model and memory asked for.
    Gpu,
    /// The task's retry delay has passed.
    Backoff,
    /// The worker is not the one the task's last attempt failed on, or
    /// that worker's time out is over.
    Avoid,
    /// The task's tenant runs fewer tasks than its limit.
    TenantLimit,
    /// The worker has a free slot, and the CPU, memory and GPUs free now.
    Capacity,
}

/// Why a worker may not run a task: the constraint, and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The constraint that refused.
    pub constraint: Constraint,
    /// In words, naming the worker.
    pub reason: String,
}

impl Constraint {
    /// Every constraint, in the order they are applied.
    pub const ALL: [Constraint; 10] = [
        Self::TaskType,
        Self::Pool,
        Self::Labels,
        Self::Cpu,
        Self::Memory,
        Self::Gpu,
        Self::Backoff,
        Self::Avoid,
        Self::TenantLimit,
        Self::Capacity,
    ];

    /// A short name (`gpu`), for logs and tests.
    pub fn name(self) -> &'static str {
        match self {
            Self::TaskType => "task_type",
            Self::Pool => "pool",
            Self::Labels => "labels",
            Self::Cpu => "cpu",
            Self::Memory => "memory",
            Self::Gpu => "gpu",
            Self::Backoff => "backoff",
            Self::Avoid => "avoid",
            Self::TenantLimit => "tenant_limit",
            Self::Capacity => "capacity",
        }
    }

    /// Whether the constraint is about the worker's hardware as it is when
    /// idle.
    pub fn is_hardware(self) -> bool {
        matches!(self, Self::Cpu | Self::Memory | Self::Gpu)
    }

    /// Applies the rule to one worker.
    pub fn check(self, ask: &Ask<'_>, candidate: &Candidate<'_>, now: i64) -> Result<(), Refusal> {
        self.judge(ask, candidate, now, true)
    }

    /// [`Constraint::check`], the refusal's reason left empty unless
    /// `describe`: putting a refusal in words costs more than finding it,
    /// and a pass over a thousand workers needs the words of a few.
    pub fn judge(
        self,
        ask: &Ask<'_>,
        candidate: &Candidate<'_>,
        now: i64,
        describe: bool,
    ) -> Result<(), Refusal> {
        let refuse = |reason: &dyn Fn() -> String| {
            Err(Refusal {
                constraint: self,
                reason: if describe { reason() } else { String::new() },
            })
        };
        let worker = candidate.worker;
        let hardware = &worker.hardware;
        let request = ask.hardware;
        match self {
            Self::TaskType => {
                if !worker.serves(ask.task_type) {
                    return refuse(&|| {
                        format!(
                            "{} does not advertise task type {:?}",
                            worker.name, ask.task_type
                        )
                    });
                }
            }
            Self::Pool => match worker.pool_tenant.as_deref() {
                Some(tenant) if tenant == ask.tenant => {}
                Some(tenant) => {
                    return refuse(&|| {
                        format!("{} runs only tenant {tenant}'s tasks", worker.name)
                    });
                }
                None if ask.shared_workers => {}
                None => {
                    return refuse(&|| {
                        format!(
                            "{} is a shared worker, and tenant {}'s tasks run only on its own workers",
                            worker.name, ask.tenant
                        )
                    });
                }
            },
            Self::Labels => {
                // Empty, with no allocation, for a task that requires none.
                let missing = missing_labels(ask, candidate);
                if !missing.is_empty() {
                    return refuse(&|| format!("{} lacks {}", worker.name, missing.join(", ")));
                }
            }
            Self::Cpu => {
                if request.cpu_millis() > hardware.cpu_millis() {
                    return refuse(&|| {
                        format!(
                            "needs cpu {} but {} has {}",
                            request.cpu, worker.name, hardware.cpus
                        )
                    });
                }
            }
            Self::Memory => {
                if request.memory_bytes > hardware.memory_bytes {
                    return refuse(&|| {
                        format!(
                            "needs memory {} but {} has {}",
                            format_bytes(request.memory_bytes),
                            worker.name,
                            format_bytes(hardware.memory_bytes)
                        )
                    });
                }
            }
            Self::Gpu => {
                let gpu = &request.gpu;
                let matching = hardware
                    .gpus
                    .iter()
                    .filter(|device| gpu.fits(&device.model, device.memory_bytes))
                    .count();
                if gpu.count > 0 && (matching as u32) < gpu.count {
                    return refuse(&|| {
                        let mut wanted = format!("{} GPU(s)", gpu.count);
                        if let Some(model) = &gpu.model {
                            wanted.push_str(&format!(" of type {model}"));
                        }
                        if gpu.memory_bytes > 0 {
                            wanted.push_str(&format!(
                                " with {} each",
                                format_bytes(gpu.memory_bytes)
                            ));
                        }
                        format!(
                            "needs {wanted} but {} has {matching} such GPU(s)",
                            worker.name
                        )
                    });
                }
            }
            Self::Backoff => {
                if ask.run_after > now {
                    return refuse(&|| {
                        format!(
                            "its retry delay runs for another {}",
                            in_words(ask.run_after - now)
                        )
                    });
                }
            }
            Self::Avoid => {
                if let Some((avoided, until)) = ask.avoid
                    && avoided == worker.name
                    && until > now
                {
                    return refuse(&|| {
                        format!(
                            "its last attempt failed on {avoided}, which is passed over for another {}",
                            in_words(until - now)
                        )
                    });
                }
            }
            Self::TenantLimit => {
                if let Some(limit) = ask.running_limit
                    && limit.running >= limit.limit
                {
                    return refuse(&|| {
                        format!(
                            "tenant {} runs {} task(s), its limit (max-running)",
                            ask.tenant, limit.running
                        )
                    });
                }
            }
            Self::Capacity => {
                let usage = &candidate.usage;
                if usage.tasks >= worker.slots.saturating_add(worker.read_ahead) {
                    return refuse(&|| {
                        if worker.read_ahead == 0 {
                            format!("{} has all {} slot(s) in use", worker.name, worker.slots)
                        } else {
                            format!(
                                "{} has all {} slot(s) in use and {} task(s) claimed ahead",
                                worker.name, worker.slots, worker.read_ahead
                            )
                        }
                    });
                }
                if request.cpu_millis() > hardware.cpu_millis() - usage.cpu_millis
                    || request.memory_bytes as i64
                        > hardware.memory_bytes as i64 - usage.memory_bytes
                    || i64::from(request.gpu.count) > hardware.gpus.len() as i64 - usage.gpus
                {
                    return refuse(&|| {
                        format!("{}'s running tasks hold the hardware it needs", worker.name)
                    });
                }
            }
        }
        Ok(())
    }
}

/// The required labels the worker does not carry with the required value,
/// as `key=value`.
pub(super) fn missing_labels(ask: &Ask<'_>, candidate: &Candidate<'_>) -> Vec<String> {
    ask.labels
        .iter()
        .filter(|(key, value)| candidate.worker.labels.get(*key) != Some(*value))
        .map(|(key, value)| format!("{key}={value}"))
        .collect()
}

/// A span of milliseconds as people read it, to the second (`1m 30s`).
fn in_words(ms: i64) -> String {
    let seconds = (ms.max(0) as u64).div_ceil(1000);
    humantime::format_duration(std::time::Duration::from_secs(seconds)).to_string()
}
