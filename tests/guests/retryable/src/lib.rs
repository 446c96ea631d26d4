//! Test fixture `retryable`: Always fails with a retryable error.

flowmesh_guest_support::fixture! {
    name: "retryable",
    description: "Always fails with a retryable error.",
    spec: {},
    output: (),
    execute: |_spec| {
        Err(TaskError::retryable("the backend is busy; try again"))
    }
}
