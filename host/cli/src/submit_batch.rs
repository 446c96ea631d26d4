//! `flowmesh task submit` with many documents: several files, files that
//! hold several documents (multi-document YAML, a JSON array, NDJSON), or a
//! stream of generated documents (`--ndjson`).
//!
//! The documents go in as few requests as the server allows: each request
//! holds at most the server's batch limit of documents and stays under its
//! request size (both read from `GET /healthz`). A request is stored whole
//! or refused whole, unless `--partial` asks the server to store the valid
//! documents of each request; the first refused request stops the
//! submission, and what the requests before it stored is reported. Errors
//! name the file and the document's index in it (`tasks.yaml[3]:
//! spec.message`). A progress bar shows large submissions on a terminal.

use std::io::BufRead;
use std::time::Duration;

use flowmesh_types::api::{BatchItem, BatchSubmitted};
use flowmesh_types::document::batch::{Format, Split, split};
use serde::Deserialize;

use crate::client::ApiClient;
use crate::error::{CliError, CliResult};
use crate::input::read_input;

/// Documents from which a submission shows a progress bar.
const PROGRESS_FROM: usize = 1000;

/// The most bytes one request carries, whatever the server would take.
const MAX_REQUEST_BYTES: usize = 16 << 20;

/// How long a stream of documents (`--ndjson`) may pause before what has
/// come is sent.
const STREAM_PAUSE: Duration = Duration::from_millis(100);

/// One document to submit, and where it came from.
pub(crate) struct Document {
    /// `FILE[i]` (or `FILE` for a file of one document).
    pub(crate) origin: String,
    /// Its text.
    pub(crate) text: String,
}

/// What a submitted document became.
pub(crate) struct Stored {
    /// Where it came from.
    pub(crate) origin: String,
    /// `Task` or `Workflow`.
    pub(crate) kind: String,
    /// Its id.
    pub(crate) id: String,
}

/// What one request may hold, as the server says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    documents: usize,
    bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            documents: 1000,
            bytes: 8 << 20,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    limits: Option<HealthLimits>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HealthLimits {
    max_batch_documents: usize,
    max_request_bytes: usize,
}

/// The server's limits per request (the defaults when it does not say).
pub(crate) async fn limits(client: &ApiClient) -> Limits {
    match client.health::<Health>().await {
        Ok(Health {
            limits: Some(limits),
        }) => Limits {
            documents: limits.max_batch_documents.max(1),
            // Room for the separators and the headers.
            bytes: (limits.max_request_bytes / 8 * 7).min(MAX_REQUEST_BYTES),
        },
        _ => Limits::default(),
    }
}

/// The documents of `files` (each split into its documents), in order.
pub(crate) fn read_documents(files: &[String]) -> CliResult<Vec<Document>> {
    let mut documents = Vec::new();
    for file in files {
        let bytes = read_input(file)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| CliError::usage(format!("{file} is not UTF-8 text")))?;
        match split(&text, Format::Any)
            .map_err(|error| CliError::usage(format!("{file}: {}", error.message)))?
        {
            Split::One(one) => documents.push(Document {
                origin: file.clone(),
                text: one.to_string(),
            }),
            Split::Many(many) => {
                documents.extend(many.into_iter().enumerate().map(|(index, text)| Document {
                    origin: format!("{file}[{index}]"),
                    text: text.to_string(),
                }))
            }
        }
    }
    Ok(documents)
}

/// Submits `documents` in requests within `limits`; what was stored. With
/// `partial`, refused documents are reported and the rest stored; without,
/// the first refused request stops the submission.
pub(crate) async fn submit_all(
    client: &ApiClient,
    documents: Vec<Document>,
    limits: Limits,
    fail_fast: bool,
    partial: bool,
) -> CliResult<Vec<Stored>> {
    let progress = progress_bar(documents.len());
    let mut sender = Sender::new(client, fail_fast, partial);
    let mut chunk = Chunk::default();
    for document in documents {
        if !chunk.fits(&document, limits) {
            sender.send(std::mem::take(&mut chunk), &progress).await?;
        }
        chunk.push(document);
    }
    if !chunk.documents.is_empty() {
        sender.send(chunk, &progress).await?;
    }
    progress.finish_and_clear();
    sender.finish()
}

/// Submits the NDJSON documents of `file` (`-`: standard input) as they
/// come: a request whenever the server's limit is reached or the stream
/// pauses.
pub(crate) async fn submit_stream(
    client: &ApiClient,
    file: &str,
    limits: Limits,
    fail_fast: bool,
    partial: bool,
) -> CliResult<Vec<Stored>> {
    let (lines, mut receiver) = tokio::sync::mpsc::channel::<std::io::Result<String>>(4096);
    let source = file.to_string();
    std::thread::spawn(move || {
        let reader: Box<dyn BufRead> = if source == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            match std::fs::File::open(&source) {
                Ok(file) => Box::new(std::io::BufReader::new(file)),
                Err(error) => {
                    let _ = lines.blocking_send(Err(error));
                    return;
                }
            }
        };
        for line in reader.lines() {
            if lines.blocking_send(line).is_err() {
                return;
            }
        }
    });
    let progress = indicatif::ProgressBar::hidden();
    let mut sender = Sender::new(client, fail_fast, partial);
    let mut chunk = Chunk::default();
    let mut index = 0;
    loop {
        let next = if chunk.documents.is_empty() {
            receiver.recv().await
        } else {
            match tokio::time::timeout(STREAM_PAUSE, receiver.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    // The stream paused: send what came.
                    sender.send(std::mem::take(&mut chunk), &progress).await?;
                    continue;
                }
            }
        };
        let Some(line) = next else { break };
        let line = line.map_err(|error| CliError::usage(format!("cannot read {file}: {error}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let document = Document {
            origin: format!("{file}[{index}]"),
            text: line,
        };
        index += 1;
        if !chunk.fits(&document, limits) {
            sender.send(std::mem::take(&mut chunk), &progress).await?;
        }
        chunk.push(document);
    }
    if !chunk.documents.is_empty() {
        sender.send(chunk, &progress).await?;
    }
    sender.finish()
}

fn progress_bar(total: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if total < PROGRESS_FROM || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "submitting {bar:40} {pos}/{len} documents ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    bar
}

/// The documents of one request.
#[derive(Default)]
struct Chunk {
    documents: Vec<Document>,
    bytes: usize,
}

impl Chunk {
    fn fits(&self, document: &Document, limits: Limits) -> bool {
        self.documents.is_empty()
            || (self.documents.len() < limits.documents
                && self.bytes + document.text.len() + 8 <= limits.bytes)
    }

    fn push(&mut self, document: Document) {
        self.bytes += document.text.len() + 8;
        self.documents.push(document);
    }

    /// The request body: a multi-document YAML stream, which holds YAML and
    /// JSON documents alike (each is parsed on its own).
    fn body(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.bytes);
        for document in &self.documents {
            body.extend_from_slice(b"---\n");
            body.extend_from_slice(document.text.as_bytes());
            if !document.text.ends_with('\n') {
                body.push(b'\n');
            }
        }
        body
    }
}

/// Sends chunks and collects what they stored and what they refused.
struct Sender<'a> {
    client: &'a ApiClient,
    path: String,
    stored: Vec<Stored>,
    refused: Vec<String>,
}

impl<'a> Sender<'a> {
    fn new(client: &'a ApiClient, fail_fast: bool, partial: bool) -> Self {
        let mut query = Vec::new();
        if fail_fast {
            query.push("failFast=true");
        }
        if partial {
            query.push("partial=true");
        }
        let path = if query.is_empty() {
            "/tasks".to_string()
        } else {
            format!("/tasks?{}", query.join("&"))
        };
        Self {
            client,
            path,
            stored: Vec::new(),
            refused: Vec::new(),
        }
    }

    async fn send(&mut self, chunk: Chunk, progress: &indicatif::ProgressBar) -> CliResult<()> {
        if chunk.documents.is_empty() {
            return Ok(());
        }
        // A stream of one document is still a batch: the server answers
        // with per-document results either way.
        let body = chunk.body();
        let answer = self
            .client
            .post::<serde_json::Value>(
                &self.path,
                body,
                "application/yaml",
                Duration::from_secs(300),
            )
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => return Err(self.stopped(&chunk, error)),
        };
        let items: Vec<BatchItem> = if answer.get("items").is_some() {
            serde_json::from_value::<BatchSubmitted>(answer)
                .map(|batch| batch.items)
                .map_err(unexpected)?
        } else {
            // One document went as a single submission.
            vec![BatchItem {
                index: 0,
                kind: Some(
                    if answer.get("workflow").is_some() {
                        "Workflow"
                    } else {
                        "Task"
                    }
                    .into(),
                ),
                id: answer["id"].as_str().map(str::to_string),
                error: None,
            }]
        };
        for item in items {
            let Some(document) = chunk.documents.get(item.index) else {
                continue;
            };
            match (item.id, item.error) {
                (Some(id), _) => self.stored.push(Stored {
                    origin: document.origin.clone(),
                    kind: item.kind.unwrap_or_default(),
                    id,
                }),
                (None, Some(error)) => {
                    let mut line = format!("{}: {}", document.origin, error.message);
                    for detail in error.details {
                        let path = relative(&detail.path, item.index);
                        line.push_str(&format!(
                            "\n  {}{path}: {}",
                            document.origin, detail.message
                        ));
                    }
                    self.refused.push(line);
                }
                (None, None) => {}
            }
        }
        progress.inc(chunk.documents.len() as u64);
        Ok(())
    }

    /// A request refused whole: its errors, each at its file and document,
    /// and what the requests before it stored.
    fn stopped(&self, chunk: &Chunk, error: CliError) -> CliError {
        let CliError::Api {
            status,
            code,
            message,
            details,
            hint,
        } = error
        else {
            return error;
        };
        let details = details
            .into_iter()
            .map(|mut detail| {
                if let Some((index, rest)) = batch_index(&detail.path)
                    && let Some(document) = chunk.documents.get(index)
                {
                    detail.path = format!("{}{rest}", document.origin);
                } else if let [document] = chunk.documents.as_slice() {
                    // One document goes as a single submission: paths from
                    // its root.
                    detail.path = if detail.path.is_empty() {
                        document.origin.clone()
                    } else {
                        format!("{}.{}", document.origin, detail.path)
                    };
                }
                detail
            })
            .collect();
        let before = if self.stored.is_empty() {
            String::new()
        } else {
            format!(
                " ({} document(s) sent in earlier requests were stored: {}…)",
                self.stored.len(),
                self.stored[0].id
            )
        };
        CliError::Api {
            status,
            code,
            message: format!("{message}{before}"),
            details,
            hint,
        }
    }

    fn finish(self) -> CliResult<Vec<Stored>> {
        if self.refused.is_empty() {
            return Ok(self.stored);
        }
        for line in &self.refused {
            eprintln!("refused {line}");
        }
        Err(CliError::Failed(format!(
            "{} document(s) were refused; {} were stored",
            self.refused.len(),
            self.stored.len()
        )))
    }
}

/// `[3].spec.message` → `(3, ".spec.message")`.
fn batch_index(path: &str) -> Option<(usize, &str)> {
    let rest = path.strip_prefix('[')?;
    let (index, rest) = rest.split_once(']')?;
    Some((index.parse().ok()?, rest))
}

/// A detail path of document `index` without its batch prefix, as `.path`
/// (or empty for the document itself).
fn relative(path: &str, index: usize) -> String {
    match batch_index(path) {
        Some((at, rest)) if at == index => rest.to_string(),
        _ => format!(".{path}"),
    }
}

fn unexpected(error: serde_json::Error) -> CliError {
    CliError::Other(anyhow::anyhow!(
        "the server's answer is not one this client understands: {error}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_keeps_to_the_document_and_byte_limits() {
        let limits = Limits {
            documents: 2,
            bytes: 100,
        };
        let document = |size: usize| Document {
            origin: "f".into(),
            text: "x".repeat(size),
        };
        let mut chunk = Chunk::default();
        assert!(
            chunk.fits(&document(500), limits),
            "an empty chunk takes anything"
        );
        chunk.push(document(10));
        assert!(chunk.fits(&document(10), limits));
        assert!(!chunk.fits(&document(90), limits), "over the bytes");
        chunk.push(document(10));
        assert!(!chunk.fits(&document(1), limits), "over the documents");
        assert_eq!(chunk.body(), b"---\nxxxxxxxxxx\n---\nxxxxxxxxxx\n");
    }

    #[test]
    fn batch_paths_name_the_file_and_document() {
        assert_eq!(
            batch_index("[12].spec.message"),
            Some((12, ".spec.message"))
        );
        assert_eq!(batch_index("[0]"), Some((0, "")));
        assert_eq!(batch_index("spec"), None);
        assert_eq!(relative("[3].spec.x", 3), ".spec.x");
    }
}
