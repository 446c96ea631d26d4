//! Task logs.
//!
//! Records go to the task's log, which the submitter can follow
//! (`flowmesh task logs --follow`). Anything the plugin prints to stdout or
//! stderr lands there too, line by line; these functions add a level. The host
//! caps the total volume per task.

use crate::bindings::flowmesh::host::log::{Level, log};

/// Logs `message` at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Logs `message` at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Logs `message` at info level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs `message` at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Logs `message` at error level.
pub fn error(message: &str) {
    log(Level::Error, message);
}
