//! Query strings as typed parameters.
//!
//! Every route takes its query string through [`Params`], into a struct of
//! its own that denies unknown fields, so a misspelt parameter
//! (`?dryrun=true`) is refused instead of silently ignored, and a malformed
//! value is refused naming the parameter: a `400` with the usual JSON error
//! body, `invalid_parameter`, and a detail at the parameter's name. A route
//! without parameters takes [`NoParams`].
//!
//! Values are parsed by the `deserialize_with` functions below, each with a
//! message that says what to write instead.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use flowmesh_types::api::{TaskState, WorkflowState};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

use super::ApiFailure;

/// The longest `?wait=` honoured.
pub(super) const MAX_WAIT: Duration = Duration::from_secs(300);
/// Items per page by default, and at most.
pub(super) const PAGE: u32 = 50;
pub(super) const MAX_PAGE: u32 = 500;

/// A route's query parameters, `T`, parsed strictly.
pub(crate) struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse(parts.uri.query().unwrap_or_default()).map(Params)
    }
}

/// Parses a query string (without the `?`) into `T`.
pub(crate) fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiFailure> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = error.inner().to_string();
        match unknown_field(&message).or_else(|| duplicate_field(&message)) {
            Some((name, rule)) => ApiFailure::bad_param(&name, rule),
            None if path == "." => ApiFailure::bad_param("query", message),
            None => ApiFailure::bad_param(&path, message),
        }
    })
}

/// Reads serde's "unknown field `x`, expected one of `a`, `b`" as the
/// parameter and what the route takes instead.
fn unknown_field(message: &str) -> Option<(String, String)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (name, rest) = rest.split_once('`')?;
    let expected = match rest.split_once("expected ") {
        Some((_, list)) => format!(
            "unknown parameter; expected one of: {}",
            list.trim_start_matches("one of ")
                .replace('`', "")
                .replace(" or ", ", ")
        ),
        None => "unknown parameter: this route takes no query parameters".to_string(),
    };
    Some((name.to_string(), expected))
}

/// Reads serde's "duplicate field `x`" as the parameter given twice.
fn duplicate_field(message: &str) -> Option<(String, String)> {
    let rest = message.strip_prefix("duplicate field `")?;
    let (name, _) = rest.split_once('`')?;
    Some((
        name.to_string(),
        "given more than once; give it once".to_string(),
    ))
}

/// For routes that take no query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoParams {}

/// The page size for a `?limit=` given or not.
pub(super) fn page_limit(limit: Option<u32>) -> u32 {
    limit.unwrap_or(PAGE)
}

/// `?follow=` of an event stream (default true).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Follow {
    /// `false`: end after the stored events.
    #[serde(default, deserialize_with = "flag")]
    pub follow: Option<bool>,
}

impl Follow {
    /// Whether to keep streaming.
    pub fn follow(&self) -> bool {
        self.follow.unwrap_or(true)
    }
}

/// `?wait=`: a duration such as `30s`, capped at [`MAX_WAIT`].
pub(super) fn wait<'de, D: Deserializer<'de>>(input: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(input)?;
    humantime::parse_duration(&text)
        .map(|wait| Some(wait.min(MAX_WAIT)))
        .map_err(|error| D::Error::custom(format!("{error}; write a duration such as 30s")))
}

/// A boolean flag: `true`, `false`, or empty (`?dryRun`) for true.
pub(super) fn flag<'de, D: Deserializer<'de>>(input: D) -> Result<Option<bool>, D::Error> {
    match String::deserialize(input)?.as_str() {
        "true" | "" => Ok(Some(true)),
        "false" => Ok(Some(false)),
        other => Err(D::Error::custom(format!(
            "{other:?} is not a boolean; write true or false"
        ))),
    }
}

pub(super) fn limit<'de, D: Deserializer<'de>>(input: D) -> Result<Option<u32>, D::Error> {
    String::deserialize(input)?
        .parse::<u32>()
        .ok()
        .filter(|limit| (1..=MAX_PAGE).contains(limit))
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("must be a whole number from 1 to {MAX_PAGE}")))
}

pub(super) fn cursor<'de, D: Deserializer<'de>>(input: D) -> Result<Option<i64>, D::Error> {
    String::deserialize(input)?
        .parse::<i64>()
        .map(Some)
        .map_err(|_| D::Error::custom("not a cursor this server returned; pass nextCursor as is"))
}

/// `?state=` of the task list.
pub(super) fn task_state<'de, D: Deserializer<'de>>(
    input: D,
) -> Result<Option<TaskState>, D::Error> {
    let name = String::deserialize(input)?;
    TaskState::parse(&name).map(Some).ok_or_else(|| {
        D::Error::custom(format!(
            "unknown state {name:?}; expected one of: {}",
            TaskState::ALL.map(TaskState::as_str).join(", ")
        ))
    })
}

/// `?state=` of the workflow list.
pub(super) fn workflow_state<'de, D: Deserializer<'de>>(
    input: D,
) -> Result<Option<WorkflowState>, D::Error> {
    let name = String::deserialize(input)?;
    WorkflowState::parse(&name).map(Some).ok_or_else(|| {
        D::Error::custom(format!(
            "unknown state {name:?}; expected one of: {}",
            WorkflowState::ALL.map(WorkflowState::as_str).join(", ")
        ))
    })
}

/// `?label=key=value`.
pub(super) fn label<'de, D: Deserializer<'de>>(
    input: D,
) -> Result<Option<(String, String)>, D::Error> {
    let text = String::deserialize(input)?;
    text.split_once('=')
        .filter(|(key, _)| flowmesh_types::document::is_label_key(key))
        .map(|(key, value)| Some((key.to_string(), value.to_string())))
        .ok_or_else(|| {
            D::Error::custom(
                "write the label filter as key=value; a key is letters, digits, '-', '_', '.' and '/'",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Submit {
        #[serde(default, deserialize_with = "wait")]
        wait: Option<Duration>,
        #[serde(default, deserialize_with = "flag")]
        dry_run: Option<bool>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Page {
        #[serde(default, deserialize_with = "limit")]
        limit: Option<u32>,
    }

    fn refusal<T: DeserializeOwned + std::fmt::Debug>(query: &str) -> (String, String) {
        let failure = parse::<T>(query).expect_err("refused");
        assert_eq!(failure.status, axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(failure.error.code, "invalid_parameter");
        let detail = &failure.error.details[0];
        (detail.path.clone(), detail.message.clone())
    }

    #[test]
    fn known_parameters_parse_into_their_types() {
        let submit: Submit = parse("wait=2s&dryRun").expect("valid");
        assert_eq!(submit.wait, Some(Duration::from_secs(2)));
        assert_eq!(submit.dry_run, Some(true));
        let submit: Submit = parse("wait=1h").expect("valid");
        assert_eq!(submit.wait, Some(MAX_WAIT), "capped");
        let page: Page = parse("").expect("valid");
        assert_eq!(page_limit(page.limit), PAGE);
    }

    #[test]
    fn unknown_and_malformed_parameters_are_named() {
        let (path, message) = refusal::<Submit>("dryrun=true");
        assert_eq!(path, "dryrun");
        assert_eq!(message, "unknown parameter; expected one of: wait, dryRun");
        let (path, message) = refusal::<NoParams>("verbose=1");
        assert_eq!(path, "verbose");
        assert!(message.contains("takes no query parameters"), "{message}");
        let (path, message) = refusal::<Submit>("wait=soon");
        assert_eq!(path, "wait");
        assert!(message.contains("such as 30s"), "{message}");
        let (path, _) = refusal::<Submit>("dryRun=yes");
        assert_eq!(path, "dryRun");
        let (path, message) = refusal::<Page>("limit=0");
        assert_eq!(path, "limit");
        assert!(message.contains("1 to 500"), "{message}");
        let (path, _) = refusal::<Page>("limit=5&limit=6");
        assert_eq!(path, "limit", "a parameter given twice");
    }
}
