//! Reading the files a command is given, and naming the file an API error is
//! about.

use std::io::Read;

use crate::error::{CliError, CliResult};

/// The bytes of `file`, or of standard input for `-`.
pub(crate) fn read_input(file: &str) -> CliResult<Vec<u8>> {
    if file == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|error| CliError::usage(format!("cannot read standard input: {error}")))?;
        return Ok(bytes);
    }
    std::fs::read(file).map_err(|error| CliError::usage(format!("cannot read {file}: {error}")))
}

/// Names the file an API error is about.
pub(crate) fn in_file(file: &str, error: CliError) -> CliError {
    match error {
        CliError::Api {
            status,
            code,
            message,
            details,
            hint,
        } => CliError::Api {
            status,
            code,
            message: format!("{file}: {message}"),
            details,
            hint,
        },
        other => other,
    }
}
