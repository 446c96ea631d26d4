//! Building requests shared by the client commands: checked ids for URL
//! paths, list queries, percent-encoding, and cancelling by id.

use crate::client::ApiClient;
use crate::error::{CliError, CliResult};
use crate::output::{Output, print_one_or_many};

/// `DELETE /{collection}/{id}` for each of `ids`: a line per answer from
/// `line`, or (JSON) the answers.
pub(crate) async fn cancel_each<T: serde::de::DeserializeOwned + serde::Serialize>(
    client: &ApiClient,
    collection: &str,
    ids: &[String],
    output: Output,
    line: impl Fn(&T) -> String,
) -> CliResult {
    let mut views = Vec::new();
    for id in ids {
        let value = client
            .delete(&format!("/{collection}/{}", path_segment(id)?))
            .await?;
        let view: T =
            serde_json::from_value(value).map_err(|error| CliError::Other(error.into()))?;
        if output == Output::Table {
            crate::outln!("{}", line(&view));
        }
        views.push(view);
    }
    if output == Output::Json {
        print_one_or_many(&views);
    }
    Ok(())
}

/// Checks that `id` can go into a URL path as is.
pub(crate) fn path_segment(id: &str) -> CliResult<&str> {
    if !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        Ok(id)
    } else {
        Err(CliError::usage(format!(
            "{id:?} is not an id or name: use letters, digits, '-', '_', '.' or ':'"
        )))
    }
}

/// `limit=N` and each given filter, percent-encoded: a list route's query.
pub(crate) fn list_query<const N: usize>(
    limit: u32,
    filters: [(&str, Option<String>); N],
) -> String {
    let mut query = vec![format!("limit={limit}")];
    for (key, value) in filters {
        if let Some(value) = value {
            query.push(format!("{key}={}", encode(&value)));
        }
    }
    query.join("&")
}

/// Percent-encodes a query value.
pub(crate) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
