//! How read commands print: `--output table` (aligned columns and
//! `key: value` blocks for people) or `--output json` (the API's JSON, for
//! scripts).

use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

/// The `--output` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Human-readable tables.
    Table,
    /// JSON, as the API returns it.
    Json,
}

/// Writes a line to standard output. When the reader has gone (`flowmesh
/// task list | head`), the command ends quietly instead of failing.
pub fn write_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(error) = writeln!(out, "{line}") {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {error}");
        std::process::exit(6);
    }
}

/// `println!` through [`write_line`].
#[macro_export]
macro_rules! outln {
    () => { $crate::output::write_line(format_args!("")) };
    ($($arg:tt)*) => { $crate::output::write_line(format_args!($($arg)*)) };
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => crate::outln!("{text}"),
        Err(error) => eprintln!("error: cannot print JSON: {error}"),
    }
}

/// A table with a header row, printed without borders.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_style(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| h.to_uppercase()));
    table
}

/// Prints a table, trimming the padding at line ends.
pub fn print_table(table: &Table) {
    for line in table.to_string().lines() {
        let line = line.strip_prefix(' ').unwrap_or(line);
        crate::outln!("{}", line.trim_end());
    }
}

/// Prints `key: value` lines, keys aligned.
pub fn print_fields(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    for (key, value) in fields {
        crate::outln!("{:width$}  {value}", format!("{key}:"), width = width + 1);
    }
}

/// `sha256:0123456789ab` from a full digest.
pub fn short_digest(digest: &str) -> String {
    digest.chars().take("sha256:".len() + 12).collect()
}

/// A list, or `-` when empty.
pub fn list<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> String {
    let items: Vec<String> = items.into_iter().map(|s| s.as_ref().to_string()).collect();
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(", ")
    }
}

/// Prints the one item as JSON, or (none or several) the list of them.
pub(crate) fn print_one_or_many<T: Serialize>(items: &[T]) {
    match items {
        [one] => print_json(one),
        many => print_json(&many),
    }
}

/// Prints a JSON value pretty, or as it comes when that fails.
pub(crate) fn print_value(value: &serde_json::Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => crate::outln!("{text}"),
        Err(_) => crate::outln!("{value}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_shorten_to_twelve_hex_digits() {
        assert_eq!(
            short_digest("sha256:0123456789abcdef0123"),
            "sha256:0123456789ab"
        );
    }
}
