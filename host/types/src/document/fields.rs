//! Collecting field errors, each with the path of the field it is about
//! (`spec.resources.hardware.memory`).

use serde_json::{Map, Value};

use crate::manifest::FieldError;

/// The field errors found so far, in the order found: a check reports every
/// problem, each at its path, rather than stopping at the first.
#[derive(Default)]
pub(crate) struct Errors(pub(crate) Vec<FieldError>);

impl Errors {
    pub(crate) fn add(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(path, message));
    }

    /// Reports every key of `object` not in `known`.
    pub(crate) fn unknown_fields(
        &mut self,
        path: &str,
        object: &Map<String, Value>,
        known: &[&str],
    ) {
        for key in object.keys().filter(|key| !known.contains(&key.as_str())) {
            self.add(
                &join(path, key),
                format!("unknown field; expected one of: {}", known.join(", ")),
            );
        }
    }

    pub(crate) fn object<'v>(
        &mut self,
        path: &str,
        value: &'v Value,
    ) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(object) => Some(object),
            other => {
                self.add(path, format!("must be a mapping, not {}", kind_of(other)));
                None
            }
        }
    }
}

/// `key` under `path`: `spec` and `timeout` make `spec.timeout`.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// What a value is, for messages: `a string`, `a list`, ….
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
