//! Test fixture `invalid-output`: a plugin written against the raw generated
//! bindings, without the SDK's typed layer, whose `execute` returns text that
//! is not a JSON document.

use flowmesh_sdk::bindings::exports::flowmesh::executor::executor::{
    FieldError, Guest, Manifest, Task, TaskError, TaskType,
};

struct RawPlugin;

impl Guest for RawPlugin {
    fn describe() -> Manifest {
        Manifest {
            name: "invalid-output".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Returns output that is not JSON.".into(),
            task_types: vec![TaskType {
                name: "invalid-output".into(),
                description: "Returns output that is not JSON.".into(),
                spec_schema: r#"{"type": "object"}"#.into(),
            }],
        }
    }

    fn validate(_task_type: String, _spec: String) -> Result<(), Vec<FieldError>> {
        Ok(())
    }

    fn execute(_task: Task) -> Result<String, TaskError> {
        Ok("this is not { JSON".into())
    }
}

flowmesh_sdk::bindings::export_bindings!(RawPlugin with_types_in flowmesh_sdk::bindings);
