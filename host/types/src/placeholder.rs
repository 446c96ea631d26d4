//! Placeholders: `${stage.output.path}` in a workflow stage's plugin fields,
//! replaced by what an upstream stage produced once it has finished.
//!
//! A placeholder is `${` reference `}` inside a string value:
//!
//! | reference | value |
//! |---|---|
//! | `<stage>.output` | the stage's whole output (a JSON value) |
//! | `<stage>.output.a.b.0` | a field of it; a number indexes a list |
//! | `<stage>.id` | the stage's task id |
//! | `<stage>.worker` | the name of the worker that ran it |
//! | `workflow.id`, `workflow.name` | the workflow's id and `metadata.name` |
//!
//! A string that is exactly one placeholder takes the referenced value with
//! its JSON type (`count: "${train.output.epochs}"` becomes a number). A
//! placeholder inside longer text is replaced by the value's text: a string
//! as is, a number or boolean as written; an object or list there is an
//! error, since no text form of it would be what the author meant. `$${`
//! writes a literal `${`.
//!
//! This module finds placeholders ([`find`]) and substitutes them
//! ([`resolve`]); which stages may be referenced, and where the values come
//! from, is the workflow's business.

use serde_json::{Map, Value};

use crate::FieldError;

/// What a placeholder refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `<stage>.output[.path]`: a stage's output, or a field of it.
    Output {
        /// The stage.
        stage: String,
        /// Keys and list indexes into the output; empty for all of it.
        path: Vec<String>,
    },
    /// `<stage>.id`: the stage's task id.
    Id {
        /// The stage.
        stage: String,
    },
    /// `<stage>.worker`: the worker that ran the stage.
    Worker {
        /// The stage.
        stage: String,
    },
    /// `workflow.id`.
    WorkflowId,
    /// `workflow.name`.
    WorkflowName,
}

impl Reference {
    /// The stage it refers to, unless it is about the workflow.
    pub fn stage(&self) -> Option<&str> {
        match self {
            Self::Output { stage, .. } | Self::Id { stage } | Self::Worker { stage } => Some(stage),
            Self::WorkflowId | Self::WorkflowName => None,
        }
    }
}

/// One placeholder found in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    /// Where: the path of the string holding it (`spec.messages.0.content`).
    pub path: String,
    /// The placeholder as written, `${train.output.model}`.
    pub text: String,
    /// What it refers to.
    pub reference: Reference,
}

/// One substitution [`resolve`] made, for explaining a spec that turned out
/// invalid.
#[derive(Debug, Clone, PartialEq)]
pub struct Substitution {
    /// The path of the string that held the placeholder.
    pub path: String,
    /// The placeholder as written.
    pub text: String,
    /// The value it resolved to, as JSON, cut short when long.
    pub value: String,
}

/// Most characters of a value kept in a [`Substitution`].
const EXCERPT: usize = 120;

/// The JSON text of `value`, cut to [`EXCERPT`] characters.
pub fn excerpt(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= EXCERPT {
        text
    } else {
        let cut: String = text.chars().take(EXCERPT).collect();
        format!("{cut}…")
    }
}

/// The name a stage may not take: `workflow.…` placeholders are about the
/// workflow itself.
pub const WORKFLOW: &str = "workflow";

/// Whether `text` holds a placeholder (an unescaped `${`).
pub fn contains(text: &str) -> bool {
    matches!(scan(text), Ok(pieces) if pieces.iter().any(|piece| matches!(piece, Piece::Placeholder(..))))
        || scan(text).is_err()
}

/// Every placeholder in the string values of `value`, whose path is `base`
/// (`spec`). Malformed ones are errors naming the path and what is wrong.
pub fn find(value: &Value, base: &str) -> Result<Vec<Use>, Vec<FieldError>> {
    let mut uses = Vec::new();
    let mut errors = Vec::new();
    walk(value, base, &mut |path, text| match scan(text) {
        Ok(pieces) => {
            for piece in pieces {
                if let Piece::Placeholder(text, reference) = piece {
                    uses.push(Use {
                        path: path.to_string(),
                        text,
                        reference,
                    });
                }
            }
        }
        Err(message) => errors.push(FieldError::new(path, message)),
    });
    if errors.is_empty() {
        Ok(uses)
    } else {
        Err(errors)
    }
}

/// `value` with every placeholder replaced by what `lookup` answers for its
/// reference, and the substitutions made. The first failure is an error at
/// the path of the string, naming the placeholder; so is a result whose
/// substituted values add up to more than `limit` bytes of JSON (a spec is
/// a document, not a data channel).
pub fn resolve(
    value: &Value,
    base: &str,
    limit: usize,
    lookup: &dyn Fn(&Reference) -> Result<Value, String>,
) -> Result<(Value, Vec<Substitution>), FieldError> {
    let mut resolution = Resolution {
        lookup,
        limit,
        size: 0,
        substitutions: Vec::new(),
    };
    let resolved = resolution.at(value, base)?;
    Ok((resolved, resolution.substitutions))
}

/// The state of one [`resolve`].
struct Resolution<'l> {
    lookup: &'l dyn Fn(&Reference) -> Result<Value, String>,
    limit: usize,
    /// Bytes of JSON substituted so far.
    size: usize,
    substitutions: Vec<Substitution>,
}

/// Counts the bytes written to it.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Resolution<'_> {
    fn at(&mut self, value: &Value, path: &str) -> Result<Value, FieldError> {
        Ok(match value {
            Value::String(text) => self.text(text, path)?,
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| self.at(item, &format!("{path}.{index}")))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(object) => Value::Object(
                object
                    .iter()
                    .map(|(key, item)| Ok((key.clone(), self.at(item, &format!("{path}.{key}"))?)))
                    .collect::<Result<Map<_, _>, FieldError>>()?,
            ),
            other => other.clone(),
        })
    }

    fn fetch(
        &mut self,
        path: &str,
        placeholder: &str,
        reference: &Reference,
    ) -> Result<Value, FieldError> {
        let value = (self.lookup)(reference)
            .map_err(|message| FieldError::new(path, format!("{placeholder}: {message}")))?;
        let mut counter = Counter(0);
        let _ = serde_json::to_writer(&mut counter, &value);
        self.size += counter.0;
        if self.size > self.limit {
            return Err(FieldError::new(
                path,
                format!(
                    "{placeholder}: the resolved values add up to more than {} bytes; pass a reference to large data (a URL, a path) instead of the data",
                    self.limit
                ),
            ));
        }
        self.substitutions.push(Substitution {
            path: path.to_string(),
            text: placeholder.to_string(),
            value: excerpt(&value),
        });
        Ok(value)
    }

    fn text(&mut self, text: &str, path: &str) -> Result<Value, FieldError> {
        let pieces = scan(text).map_err(|message| FieldError::new(path, message))?;
        if let [Piece::Placeholder(placeholder, reference)] = pieces.as_slice() {
            return self.fetch(path, placeholder, reference);
        }
        let mut out = String::with_capacity(text.len());
        for piece in &pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Placeholder(placeholder, reference) => {
                    match self.fetch(path, placeholder, reference)? {
                        Value::String(text) => out.push_str(&text),
                        Value::Null => out.push_str("null"),
                        scalar @ (Value::Bool(_) | Value::Number(_)) => {
                            out.push_str(&scalar.to_string())
                        }
                        other => {
                            return Err(FieldError::new(
                                path,
                                format!(
                                    "{placeholder} is {}, which cannot be part of a longer string; make the placeholder the whole value, or refer to a field inside it",
                                    if other.is_array() {
                                        "a list"
                                    } else {
                                        "an object"
                                    }
                                ),
                            ));
                        }
                    }
                }
            }
        }
        Ok(Value::String(out))
    }
}

/// Calls `visit(path, text)` for every string in `value`.
fn walk(value: &Value, path: &str, visit: &mut dyn FnMut(&str, &str)) {
    match value {
        Value::String(text) => visit(path, text),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                walk(item, &format!("{path}.{index}"), visit);
            }
        }
        Value::Object(object) => {
            for (key, item) in object {
                walk(item, &format!("{path}.{key}"), visit);
            }
        }
        _ => {}
    }
}

/// A string cut into literal text and placeholders.
#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    Placeholder(String, Reference),
}

fn scan(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            literal.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                return Err(format!(
                    "unterminated placeholder {after:?}: write ${{stage.output.field}}, or $${{ for a literal ${{"
                ));
            };
            let inner = &tail[..end];
            let reference = parse_reference(inner)
                .map_err(|message| format!("placeholder ${{{inner}}}: {message}"))?;
            if !literal.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut literal)));
            }
            pieces.push(Piece::Placeholder(format!("${{{inner}}}"), reference));
            rest = &tail[end + 1..];
        } else {
            literal.push('$');
            rest = &after[1..];
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

fn parse_reference(inner: &str) -> Result<Reference, String> {
    const FORMS: &str =
        "write <stage>.output[.field…], <stage>.id, <stage>.worker, workflow.id or workflow.name";
    let segments: Vec<&str> = inner.trim().split('.').collect();
    if segments.iter().any(|segment| !is_segment(segment)) {
        return Err(format!(
            "each part of a reference is letters, digits, '_' or '-', separated by '.'; {FORMS}"
        ));
    }
    match segments.as_slice() {
        [WORKFLOW, "id"] => Ok(Reference::WorkflowId),
        [WORKFLOW, "name"] => Ok(Reference::WorkflowName),
        [WORKFLOW, ..] => Err(format!("the workflow has only id and name; {FORMS}")),
        [stage, "output", path @ ..] => Ok(Reference::Output {
            stage: stage.to_string(),
            path: path.iter().map(|segment| segment.to_string()).collect(),
        }),
        [stage, "id"] => Ok(Reference::Id {
            stage: stage.to_string(),
        }),
        [stage, "worker"] => Ok(Reference::Worker {
            stage: stage.to_string(),
        }),
        [_] => Err(format!("a stage name alone is not a value; {FORMS}")),
        [_, other, ..] => Err(format!("a stage has no {other:?}; {FORMS}")),
        [] => Err(FORMS.to_string()),
    }
}

fn is_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The value at `path` inside `value` (object keys, list indexes), or an
/// error saying how far it got and what was there.
pub fn lookup_path(value: &Value, path: &[String]) -> Result<Value, String> {
    let mut current = value;
    for (depth, segment) in path.iter().enumerate() {
        let next = match current {
            Value::Object(object) => object.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        current = next.ok_or_else(|| {
            let at = if depth == 0 {
                "the output".to_string()
            } else {
                format!("output.{}", path[..depth].join("."))
            };
            match current {
                Value::Object(object) => format!(
                    "{at} has no field {segment:?} (its fields: {})",
                    if object.is_empty() {
                        "none".to_string()
                    } else {
                        object.keys().cloned().collect::<Vec<_>>().join(", ")
                    }
                ),
                Value::Array(items) => format!(
                    "{at} is a list of {} item(s); {segment:?} is not an index in it",
                    items.len()
                ),
                other => format!("{at} is {other}, which has no field {segment:?}"),
            }
        })?;
    }
    Ok(current.clone())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn references(value: Value) -> Vec<(String, String, Reference)> {
        find(&value, "spec")
            .expect("valid")
            .into_iter()
            .map(|found| (found.path, found.text, found.reference))
            .collect()
    }

    #[test]
    fn placeholders_are_found_with_their_paths() {
        let found = references(json!({
            "model": "${train.output.model}",
            "messages": [{"content": "say ${draft.output.text} to ${workflow.name}"}],
            "plain": "costs $5 and $${literal}",
            "n": 3,
        }));
        assert_eq!(
            found,
            [
                (
                    "spec.messages.0.content".into(),
                    "${draft.output.text}".into(),
                    Reference::Output {
                        stage: "draft".into(),
                        path: vec!["text".into()]
                    }
                ),
                (
                    "spec.messages.0.content".into(),
                    "${workflow.name}".into(),
                    Reference::WorkflowName
                ),
                (
                    "spec.model".into(),
                    "${train.output.model}".into(),
                    Reference::Output {
                        stage: "train".into(),
                        path: vec!["model".into()]
                    }
                ),
            ]
        );
    }

    #[test]
    fn malformed_placeholders_are_errors_at_their_path() {
        let errors = find(
            &json!({"a": "${train.outptu.x}", "b": ["${oops"], "c": "${train}", "d": "${a b}"}),
            "spec",
        )
        .expect_err("malformed");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["spec.a", "spec.b.0", "spec.c", "spec.d"]);
        assert!(errors[0].message.contains("no \"outptu\""), "{errors:?}");
        assert!(errors[1].message.contains("unterminated"), "{errors:?}");
    }

    #[test]
    fn a_whole_value_placeholder_keeps_its_type_and_text_interpolates() {
        let outputs = json!({"epochs": 3, "ok": true, "name": "m1", "nested": {"list": [10, 20]}});
        let lookup = |reference: &Reference| match reference {
            Reference::Output { path, .. } => lookup_path(&outputs, path),
            Reference::WorkflowId => Ok(json!("wf-1")),
            _ => Err("unavailable".to_string()),
        };
        let (value, substitutions) = resolve(
            &json!({
                "count": "${a.output.epochs}",
                "flag": "${a.output.ok}",
                "all": "${a.output.nested}",
                "text": "model ${a.output.name} run ${workflow.id}: ${a.output.nested.list.1} $${kept}",
            }),
            "spec",
            1 << 20,
            &lookup,
        )
        .expect("resolves");
        assert_eq!(
            value,
            json!({"count": 3, "flag": true, "all": {"list": [10, 20]},
                   "text": "model m1 run wf-1: 20 ${kept}"})
        );
        assert_eq!(substitutions.len(), 6);
        assert!(
            substitutions
                .iter()
                .any(|s| s.path == "spec.count" && s.value == "3")
        );
    }

    #[test]
    fn unresolvable_placeholders_name_the_placeholder_and_what_is_there() {
        let outputs = json!({"metrics": {"loss": 0.1}, "items": [1]});
        let lookup = |reference: &Reference| match reference {
            Reference::Output { path, .. } => lookup_path(&outputs, path),
            _ => Err("unavailable".to_string()),
        };
        let error = resolve(
            &json!({"x": "${a.output.metrics.acc}"}),
            "spec",
            1 << 20,
            &lookup,
        )
        .expect_err("missing field");
        assert_eq!(error.path, "spec.x");
        assert!(
            error.message.starts_with(
                "${a.output.metrics.acc}: output.metrics has no field \"acc\" (its fields: loss)"
            ),
            "{error}"
        );
        let error = resolve(
            &json!({"x": "${a.output.items.5}"}),
            "spec",
            1 << 20,
            &lookup,
        )
        .expect_err("out of range");
        assert!(error.message.contains("list of 1 item(s)"), "{error}");
        let error = resolve(
            &json!({"x": "see ${a.output.metrics}"}),
            "spec",
            1 << 20,
            &lookup,
        )
        .expect_err("object in text");
        assert!(error.message.contains("an object"), "{error}");
        let big = json!({"x": ["${a.output}", "${a.output}", "${a.output}"]});
        let error = resolve(&big, "spec", 60, &lookup).expect_err("too large");
        assert_eq!(error.path, "spec.x.1");
        assert!(error.message.contains("more than 60 bytes"), "{error}");
    }

    #[test]
    fn contains_sees_unescaped_placeholders_only() {
        assert!(contains("${a.output}"));
        assert!(contains("x ${broken"));
        assert!(!contains("$${a.output}"));
        assert!(!contains("$5"));
    }
}
