//! Many documents in one text: a JSON array, NDJSON (one JSON document per
//! line), or multi-document YAML (documents separated by `---` lines).
//!
//! [`split`] finds the documents without parsing them; each is then parsed
//! and checked on its own ([`super::parse`]), and its problems are reported
//! under its index (`[17].spec.message`, see [`at_index`]).
//!
//! What makes a text a batch:
//! - it starts with `[`: a JSON array, each element a document;
//! - the caller says it is NDJSON (`Content-Type: application/x-ndjson`),
//!   or its first line is a whole JSON object and another line follows:
//!   NDJSON, blank lines skipped;
//! - it holds more than one YAML document: the `---` lines that start
//!   documents (at column 0, as YAML requires) separate them.
//!
//! Anything else is one document, as before: a single YAML or JSON document
//! keeps its single answer.

use serde_json::value::RawValue;

use crate::manifest::FieldError;

/// What a request body holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Split<'a> {
    /// One document.
    One(&'a str),
    /// Several (or a JSON array or NDJSON of any length): each document's
    /// text, in order.
    Many(Vec<&'a str>),
}

/// How the caller labelled the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Unlabelled: YAML or JSON, one document or several.
    #[default]
    Any,
    /// NDJSON: one JSON document per line.
    Ndjson,
}

/// Finds the documents in `text`; see the module documentation. A JSON
/// array that does not parse is an error at the path of the problem.
pub fn split(text: &str, format: Format) -> Result<Split<'_>, FieldError> {
    let trimmed = text.trim_start();
    if format == Format::Ndjson || looks_like_ndjson(trimmed) {
        return Ok(Split::Many(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect(),
        ));
    }
    if trimmed.starts_with('[') {
        let elements: Vec<&RawValue> = serde_json::from_str(text).map_err(|error| {
            FieldError::new("", format!("not a valid JSON array of documents: {error}"))
        })?;
        return Ok(Split::Many(
            elements.into_iter().map(RawValue::get).collect(),
        ));
    }
    let documents = yaml_documents(text);
    if documents.len() > 1 {
        Ok(Split::Many(documents))
    } else {
        Ok(Split::One(text))
    }
}

/// A first line that is a whole JSON object, and more lines after it.
fn looks_like_ndjson(text: &str) -> bool {
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let Some(first) = lines.next() else {
        return false;
    };
    first.starts_with('{')
        && lines.next().is_some()
        && serde_json::from_str::<&RawValue>(first).is_ok()
}

/// The documents of a YAML stream: the text between `---` lines, empty ones
/// (a leading `---`, comments only) left out; a `...` line ends a document.
fn yaml_documents(text: &str) -> Vec<&str> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end();
        let marker = bare == "---" || bare.starts_with("--- ") || bare == "...";
        if marker {
            push_document(&mut documents, &text[start..offset]);
            // A `--- {inline: document}` keeps its content.
            start = if bare.starts_with("--- ") {
                offset + 4
            } else {
                offset + line.len()
            };
        }
        offset += line.len();
    }
    push_document(&mut documents, &text[start..]);
    documents
}

fn push_document<'a>(documents: &mut Vec<&'a str>, text: &'a str) {
    let content = text
        .lines()
        .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'));
    if content {
        documents.push(text);
    }
}

/// `errors` of the document at `index` of a batch, their paths from the
/// batch's root: `spec.message` becomes `[3].spec.message`.
pub fn at_index(index: usize, errors: Vec<FieldError>) -> Vec<FieldError> {
    errors
        .into_iter()
        .map(|error| FieldError {
            path: if error.path.is_empty() {
                format!("[{index}]")
            } else {
                format!("[{index}].{}", error.path)
            },
            ..error
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK: &str = "apiVersion: flowmesh/v1\nkind: Task\nspec: {taskType: echo, message: hi}\n";

    #[test]
    fn one_yaml_or_json_document_stays_one() {
        assert_eq!(split(TASK, Format::Any), Ok(Split::One(TASK)));
        let leading = format!("---\n{TASK}");
        assert_eq!(
            split(&leading, Format::Any),
            Ok(Split::One(leading.as_str()))
        );
        let json = r#"{"apiVersion": "flowmesh/v1", "kind": "Task", "spec": {"taskType": "echo"}}"#;
        assert_eq!(split(json, Format::Any), Ok(Split::One(json)));
        let pretty = "{\n  \"kind\": \"Task\"\n}\n";
        assert_eq!(split(pretty, Format::Any), Ok(Split::One(pretty)));
    }

    #[test]
    fn yaml_documents_split_at_their_markers() {
        let text = format!("# two tasks\n---\n{TASK}---\n{TASK}...\n");
        let Ok(Split::Many(documents)) = split(&text, Format::Any) else {
            panic!("a batch");
        };
        assert_eq!(documents, [TASK, TASK]);
        let inline = "--- {kind: Task}\n--- {kind: Workflow}\n";
        assert_eq!(
            split(inline, Format::Any),
            Ok(Split::Many(vec!["{kind: Task}\n", "{kind: Workflow}\n"]))
        );
    }

    #[test]
    fn a_json_array_and_ndjson_are_batches() {
        assert_eq!(
            split(r#"[{"a": 1}, {"b": [2]}]"#, Format::Any),
            Ok(Split::Many(vec![r#"{"a": 1}"#, r#"{"b": [2]}"#]))
        );
        assert_eq!(split("[]", Format::Any), Ok(Split::Many(vec![])));
        assert_eq!(
            split("{\"a\": 1}\n\n{\"b\": 2}\n", Format::Any),
            Ok(Split::Many(vec![r#"{"a": 1}"#, r#"{"b": 2}"#]))
        );
        assert_eq!(
            split("{\"a\": 1}\n", Format::Ndjson),
            Ok(Split::Many(vec![r#"{"a": 1}"#]))
        );
        assert!(split("[{\"a\": 1},", Format::Any).is_err());
    }

    #[test]
    fn paths_start_at_the_document_index() {
        let errors = at_index(
            17,
            vec![
                FieldError::new("spec.message", "bad"),
                FieldError::new("", "worse"),
            ],
        );
        assert_eq!(errors[0].path, "[17].spec.message");
        assert_eq!(errors[1].path, "[17]");
    }
}
