//! From the typed [`TaskType`] world to the component's string-typed exports.

use crate::bindings::exports::flowmesh::executor::executor as wit;
use crate::{FieldError, Plugin, TaskError, TaskInfo, TaskType, TaskTypes};

/// One task type, erased to plain functions over JSON strings.
pub(crate) struct Entry {
    name: &'static str,
    description: &'static str,
    schema: fn() -> String,
    validate: fn(&str) -> Result<(), Vec<FieldError>>,
    execute: fn(&str, &TaskInfo) -> Result<String, TaskError>,
}

impl Entry {
    pub(crate) fn of<T: TaskType>() -> Self {
        Self {
            name: T::NAME,
            description: T::DESCRIPTION,
            schema: schema_of::<T>,
            validate: validate_json::<T>,
            execute: execute_json::<T>,
        }
    }
}

fn schema_of<T: TaskType>() -> String {
    schemars::schema_for!(T::Spec).as_value().to_string()
}

fn parse<T: TaskType>(spec: &str) -> Result<T::Spec, Vec<FieldError>> {
    let mut deserializer = serde_json::Deserializer::from_str(spec);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        vec![FieldError::new(path, error.into_inner().to_string())]
    })
}

fn validate_json<T: TaskType>(spec: &str) -> Result<(), Vec<FieldError>> {
    T::validate(&parse::<T>(spec)?)
}

fn execute_json<T: TaskType>(spec: &str, task: &TaskInfo) -> Result<String, TaskError> {
    let spec = parse::<T>(spec).map_err(TaskError::InvalidInput)?;
    T::validate(&spec).map_err(TaskError::InvalidInput)?;
    let output = T::execute(spec, task)?;
    serde_json::to_string(&output)
        .map_err(|error| TaskError::failed(format!("could not serialise the task output: {error}")))
}

fn entries<P: Plugin>() -> Vec<Entry> {
    let mut types = TaskTypes::default();
    P::task_types(&mut types);
    types.entries
}

fn unknown_task_type<P: Plugin>(task_type: &str) -> FieldError {
    FieldError::new(
        "taskType",
        format!(
            "plugin {} does not execute task type {task_type:?}",
            P::NAME
        ),
    )
}

fn to_wit_errors(errors: Vec<FieldError>) -> Vec<wit::FieldError> {
    errors
        .into_iter()
        .map(|error| wit::FieldError {
            path: error.path,
            message: error.message,
        })
        .collect()
}

/// `describe()` for plugin `P`.
pub fn describe<P: Plugin>() -> wit::Manifest {
    wit::Manifest {
        name: P::NAME.to_string(),
        version: P::VERSION.to_string(),
        description: P::DESCRIPTION.to_string(),
        task_types: entries::<P>()
            .into_iter()
            .map(|entry| wit::TaskType {
                name: entry.name.to_string(),
                description: entry.description.to_string(),
                spec_schema: (entry.schema)(),
            })
            .collect(),
    }
}

/// `validate()` for plugin `P`.
pub fn validate<P: Plugin>(task_type: &str, spec: &str) -> Result<(), Vec<wit::FieldError>> {
    let entries = entries::<P>();
    let entry = entries
        .iter()
        .find(|entry| entry.name == task_type)
        .ok_or_else(|| to_wit_errors(vec![unknown_task_type::<P>(task_type)]))?;
    (entry.validate)(spec).map_err(to_wit_errors)
}

/// `execute()` for plugin `P`.
pub fn execute<P: Plugin>(task: wit::Task) -> Result<String, wit::TaskError> {
    let entries = entries::<P>();
    let Some(entry) = entries.iter().find(|entry| entry.name == task.task_type) else {
        return Err(wit::TaskError::InvalidInput(to_wit_errors(vec![
            unknown_task_type::<P>(&task.task_type),
        ])));
    };
    let info = TaskInfo {
        id: task.id,
        task_type: task.task_type,
        attempt: task.attempt,
    };
    (entry.execute)(&task.spec, &info).map_err(|error| match error {
        TaskError::InvalidInput(errors) => wit::TaskError::InvalidInput(to_wit_errors(errors)),
        TaskError::Failed(message) => wit::TaskError::Failed(message),
        TaskError::Retryable(message) => wit::TaskError::Retryable(message),
    })
}
