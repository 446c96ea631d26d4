//! The `echo` plugin: FlowMesh's smallest real executor.
//!
//! - `echo` returns its message (optionally repeated); it is what smoke tests,
//!   benchmarks and the quickstart run.
//! - `sleep` waits for a duration, reporting progress as it goes; it is what
//!   cancellation and timeout tests run.

use std::time::Duration;

use flowmesh_sdk::{FieldError, Plugin, TaskError, TaskInfo, TaskType, TaskTypes};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Returns its message.
pub struct Echo;

/// Spec of an `echo` task.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EchoSpec {
    /// The text to return.
    pub message: String,
    /// How many times to repeat the message, separated by spaces (1 to 1000).
    #[serde(default = "one")]
    pub repeat: u32,
}

fn one() -> u32 {
    1
}

/// Output of an `echo` task.
#[derive(Debug, Serialize)]
pub struct EchoOutput {
    /// The message, repeated as asked.
    pub message: String,
}

impl TaskType for Echo {
    const NAME: &'static str = "echo";
    const DESCRIPTION: &'static str = "Returns its message, optionally repeated.";
    type Spec = EchoSpec;
    type Output = EchoOutput;

    fn validate(spec: &EchoSpec) -> Result<(), Vec<FieldError>> {
        if !(1..=1000).contains(&spec.repeat) {
            return Err(vec![FieldError::new(
                "repeat",
                format!("must be between 1 and 1000, got {}", spec.repeat),
            )]);
        }
        Ok(())
    }

    fn execute(spec: EchoSpec, _task: &TaskInfo) -> Result<EchoOutput, TaskError> {
        let message = if spec.repeat == 1 {
            spec.message
        } else {
            vec![spec.message.as_str(); spec.repeat as usize].join(" ")
        };
        Ok(EchoOutput { message })
    }
}

/// Waits for a duration.
pub struct Sleep;

/// Spec of a `sleep` task.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SleepSpec {
    /// How long to wait, e.g. `500ms`, `30s`, `2m` (at most 24h).
    pub duration: String,
}

/// Output of a `sleep` task.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SleepOutput {
    /// How long the task waited, in milliseconds.
    pub slept_ms: u64,
}

const MAX_SLEEP: Duration = Duration::from_secs(24 * 60 * 60);
/// Progress is reported this many times over a sleep.
const PROGRESS_STEPS: u32 = 20;

fn parse_duration(text: &str) -> Result<Duration, FieldError> {
    let duration = humantime::parse_duration(text).map_err(|error| {
        FieldError::new(
            "duration",
            format!("{error}: write a duration such as 500ms, 30s or 2m"),
        )
    })?;
    if duration > MAX_SLEEP {
        return Err(FieldError::new("duration", "must be at most 24h"));
    }
    Ok(duration)
}

impl TaskType for Sleep {
    const NAME: &'static str = "sleep";
    const DESCRIPTION: &'static str = "Waits for a duration, reporting progress.";
    type Spec = SleepSpec;
    type Output = SleepOutput;

    fn validate(spec: &SleepSpec) -> Result<(), Vec<FieldError>> {
        parse_duration(&spec.duration)
            .map(drop)
            .map_err(|e| vec![e])
    }

    fn execute(spec: SleepSpec, _task: &TaskInfo) -> Result<SleepOutput, TaskError> {
        let total = parse_duration(&spec.duration).map_err(|e| TaskError::InvalidInput(vec![e]))?;
        flowmesh_sdk::log::info(&format!("sleeping for {}", spec.duration));
        let step = total / PROGRESS_STEPS;
        for done in 1..=PROGRESS_STEPS {
            std::thread::sleep(step);
            flowmesh_sdk::progress::report(done as f32 / PROGRESS_STEPS as f32, None);
        }
        std::thread::sleep(total - step * PROGRESS_STEPS);
        Ok(SleepOutput {
            slept_ms: u64::try_from(total.as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// The `echo` plugin.
pub struct EchoPlugin;

impl Plugin for EchoPlugin {
    const NAME: &'static str = "echo";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "Echoes messages and sleeps: smoke tests and demos.";

    fn task_types(types: &mut TaskTypes) {
        types.add::<Echo>().add::<Sleep>();
    }
}

flowmesh_sdk::export!(EchoPlugin);
