//! Task progress.
//!
//! Reports feed progress bars and event streams of whoever watches the task.

/// Reports that the task is `fraction` done (clamped to 0.0..=1.0), with an
/// optional note on what it is doing now.
pub fn report(fraction: f32, message: Option<&str>) {
    crate::bindings::flowmesh::host::progress::report(fraction, message);
}
