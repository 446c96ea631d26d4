//! JSON parsed strictly: an object that gives a key twice is refused, naming
//! the key's path, rather than keeping the last value as `serde_json` does.
//!
//! Two values for one key mean the sender and FlowMesh may read different
//! documents (a proxy or a client library that keeps the first one would);
//! YAML documents refuse them already, and JSON ones do the same here.

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a JSON text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrictJsonError {
    /// The path of a key given twice (`spec.message`, `items[2].name`), or
    /// `None` when the text is not JSON at all.
    pub path: Option<String>,
    /// What is wrong, and what to do.
    pub message: String,
}

impl fmt::Display for StrictJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StrictJsonError {}

/// Parses `text` as one JSON value, refusing duplicate keys.
pub fn from_slice(text: &[u8]) -> Result<Value, StrictJsonError> {
    let duplicate = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let parsed = Strict {
        at: Place::Root,
        duplicate: &duplicate,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    parsed.map_err(|error| match duplicate.into_inner() {
        Some(path) => StrictJsonError {
            message: format!("{path} is given more than once; give each key once"),
            path: Some(path),
        },
        None => StrictJsonError {
            path: None,
            message: error.to_string(),
        },
    })
}

/// Parses `text` as one JSON value, refusing duplicate keys: see
/// [`from_slice`].
pub fn from_str(text: &str) -> Result<Value, StrictJsonError> {
    from_slice(text.as_bytes())
}

/// Where a value sits in the document: a chain of borrowed steps back to
/// the root, rendered as a path (`spec.items[1].b`) only for the error. A
/// request body of thousands of values thus parses without building a path
/// string for each.
#[derive(Clone, Copy)]
enum Place<'a> {
    Root,
    Key(&'a Place<'a>, &'a str),
    Index(&'a Place<'a>, usize),
}

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Root => Ok(()),
            Place::Key(Place::Root, key) => f.write_str(key),
            Place::Key(parent, key) => write!(f, "{parent}.{key}"),
            Place::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// Builds a [`Value`] at `at`, recording the first duplicate key's path.
struct Strict<'a> {
    at: Place<'a>,
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict {
            at: Place::Index(&self.at, items.len()),
            duplicate: self.duplicate,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = Place::Key(&self.at, &key);
            if object.contains_key(&key) {
                let path = at.to_string();
                let error = A::Error::custom(format!("duplicate key {path}"));
                *self.duplicate.borrow_mut() = Some(path);
                return Err(error);
            }
            let value = map.next_value_seed(Strict {
                at,
                duplicate: self.duplicate,
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_twice_is_refused_with_its_path() {
        let error =
            from_str(r#"{"spec": {"items": [{"a": 1}, {"b": 1, "b": 2}]}}"#).expect_err("refused");
        assert_eq!(error.path.as_deref(), Some("spec.items[1].b"));
        let error = from_str(r#"{"kind": "Task", "kind": "Workflow"}"#).expect_err("refused");
        assert_eq!(error.path.as_deref(), Some("kind"));
        let error = from_str(r#"[{}, [0, {"x": {"y": 1, "y": 1}}]]"#).expect_err("refused");
        assert_eq!(error.path.as_deref(), Some("[1][1].x.y"));
    }

    #[test]
    fn ordinary_json_reads_as_serde_json_reads_it() {
        let text =
            r#"{"a": [1, -2, 3.5, "x", null, true], "b": {"c": {}}, "d": 18446744073709551615}"#;
        assert_eq!(
            from_str(text).expect("strict"),
            serde_json::from_str::<Value>(text).expect("serde_json")
        );
    }

    #[test]
    fn malformed_json_and_trailing_text_are_refused_without_a_path() {
        for text in ["{\"a\": ", "{} {}", "nope"] {
            let error = from_str(text).expect_err("refused");
            assert_eq!(error.path, None, "{text}");
        }
    }
}
