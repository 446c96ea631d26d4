//! The log of one task: plugin log records, stdout and stderr lines, and
//! progress, forwarded as [`TaskEvent`]s to an [`EventSink`] under a size cap.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use flowmesh_types::{LogLevel, LogStream, TaskEvent};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Receives the events of a running task. Implemented for any
/// `Fn(TaskEvent) + Send + Sync`, e.g. a closure that sends into a channel.
pub trait EventSink: Send + Sync {
    /// Delivers one event. Must not block for long: it is called from the
    /// task's host functions.
    fn emit(&self, event: TaskEvent);
}

impl<F: Fn(TaskEvent) + Send + Sync> EventSink for F {
    fn emit(&self, event: TaskEvent) {
        self(event)
    }
}

/// An [`EventSink`] that drops every event.
pub fn discard_events() -> Arc<dyn EventSink> {
    Arc::new(|_event: TaskEvent| {})
}

/// Longest partial line kept before it is emitted as a line of its own.
const MAX_LINE: usize = 16 * 1024;
/// How much of the end of stderr is kept to explain a trap (panic messages).
const STDERR_TAIL: usize = 4 * 1024;
/// Progress reports per task; past it they are dropped with one notice.
const MAX_PROGRESS_EVENTS: u32 = 10_000;
/// Longest progress message; longer ones are cut.
const MAX_PROGRESS_MESSAGE: usize = 1024;
/// What each log record costs against the cap besides its text, so that a
/// flood of empty records is bounded too.
const RECORD_OVERHEAD: usize = 32;

pub(crate) struct TaskLog {
    sink: Arc<dyn EventSink>,
    state: Mutex<LogState>,
}

struct LogState {
    remaining: usize,
    limit: usize,
    truncated: bool,
    progress_left: u32,
    stdout_line: Vec<u8>,
    stderr_line: Vec<u8>,
    stderr_tail: String,
}

impl TaskLog {
    pub(crate) fn new(sink: Arc<dyn EventSink>, max_bytes: usize) -> Self {
        Self {
            sink,
            state: Mutex::new(LogState {
                remaining: max_bytes,
                limit: max_bytes,
                truncated: false,
                progress_left: MAX_PROGRESS_EVENTS,
                stdout_line: Vec::new(),
                stderr_line: Vec::new(),
                stderr_tail: String::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One record from the plugin's `log` interface.
    pub(crate) fn record(&self, level: LogLevel, message: String) {
        self.record_from(LogStream::Plugin, level, message);
    }

    /// One record from `stream`.
    pub(crate) fn record_from(&self, stream: LogStream, level: LogLevel, message: String) {
        let mut state = self.lock();
        self.emit_capped(&mut state, stream, level, message);
    }

    /// A progress report; not counted against the log cap, but limited to
    /// [`MAX_PROGRESS_EVENTS`] per task.
    pub(crate) fn progress(&self, fraction: f32, message: Option<String>) {
        let fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        let mut state = self.lock();
        match state.progress_left {
            0 => {}
            1 => {
                state.progress_left = 0;
                self.emit_capped(
                    &mut state,
                    LogStream::Host,
                    LogLevel::Warn,
                    format!(
                        "progress reports dropped: the task sent more than {MAX_PROGRESS_EVENTS}"
                    ),
                );
            }
            _ => {
                state.progress_left -= 1;
                drop(state);
                let message = message.map(|mut message| {
                    truncate_at_char(&mut message, MAX_PROGRESS_MESSAGE);
                    message
                });
                self.sink.emit(TaskEvent::Progress { fraction, message });
            }
        }
    }

    /// Bytes the plugin wrote to stdout or stderr; complete lines are emitted.
    pub(crate) fn write(&self, stream: LogStream, bytes: &[u8]) {
        let mut state = self.lock();
        if stream == LogStream::Stderr {
            state.keep_stderr_tail(bytes);
        }
        let mut pending = std::mem::take(state.line_mut(stream));
        pending.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(offset) = pending[start..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&pending[start..start + offset]).into_owned();
            self.emit_line(&mut state, stream, line);
            start += offset + 1;
        }
        pending.drain(..start);
        if pending.len() > MAX_LINE {
            let line = String::from_utf8_lossy(&pending).into_owned();
            pending.clear();
            self.emit_line(&mut state, stream, line);
        }
        *state.line_mut(stream) = pending;
    }

    /// Emits partial lines left at the end of the task.
    pub(crate) fn finish(&self) {
        let mut state = self.lock();
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let pending = std::mem::take(state.line_mut(stream));
            if !pending.is_empty() {
                let line = String::from_utf8_lossy(&pending).into_owned();
                self.emit_line(&mut state, stream, line);
            }
        }
    }

    /// The message of a Rust panic the plugin printed to stderr, if any.
    pub(crate) fn panic_message(&self) -> Option<String> {
        let state = self.lock();
        let lines: Vec<&str> = state.stderr_tail.lines().collect();
        let at = lines
            .iter()
            .rposition(|line| line.contains(" panicked at "))?;
        let location = lines[at]
            .split(" panicked at ")
            .nth(1)
            .unwrap_or_default()
            .trim_end_matches(':');
        let message: Vec<&str> = lines[at + 1..]
            .iter()
            .copied()
            .take_while(|line| !line.starts_with("note: "))
            .collect();
        Some(format!("{location}: {}", message.join("\n")))
    }

    fn emit_line(&self, state: &mut LogState, stream: LogStream, line: String) {
        let level = match stream {
            LogStream::Stderr => LogLevel::Warn,
            _ => LogLevel::Info,
        };
        self.emit_capped(state, stream, level, line);
    }

    fn emit_capped(
        &self,
        state: &mut LogState,
        stream: LogStream,
        level: LogLevel,
        message: String,
    ) {
        let cost = message.len() + RECORD_OVERHEAD;
        if !state.truncated && cost <= state.remaining {
            state.remaining -= cost;
            self.sink.emit(TaskEvent::Log {
                stream,
                level,
                message,
            });
        } else if !state.truncated {
            state.truncated = true;
            state.remaining = 0;
            self.sink.emit(TaskEvent::Log {
                stream: LogStream::Host,
                level: LogLevel::Warn,
                message: format!(
                    "log truncated: the task wrote more than its limit of {} bytes of logs",
                    state.limit
                ),
            });
        }
    }
}

/// Cuts `text` to at most `max` bytes, at a character boundary.
fn truncate_at_char(text: &mut String, max: usize) {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
}

impl LogState {
    fn line_mut(&mut self, stream: LogStream) -> &mut Vec<u8> {
        match stream {
            LogStream::Stderr => &mut self.stderr_line,
            _ => &mut self.stdout_line,
        }
    }

    fn keep_stderr_tail(&mut self, bytes: &[u8]) {
        self.stderr_tail.push_str(&String::from_utf8_lossy(bytes));
        if self.stderr_tail.len() > STDERR_TAIL {
            let mut cut = self.stderr_tail.len() - STDERR_TAIL;
            while !self.stderr_tail.is_char_boundary(cut) {
                cut += 1;
            }
            self.stderr_tail.drain(..cut);
        }
    }
}

/// The plugin's stdout or stderr: every write goes to the task log.
#[derive(Clone)]
pub(crate) struct CapturedStdio {
    log: Arc<TaskLog>,
    stream: LogStream,
}

impl CapturedStdio {
    pub(crate) fn new(log: Arc<TaskLog>, stream: LogStream) -> Self {
        Self { log, stream }
    }
}

impl IsTerminal for CapturedStdio {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedStdio {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

/// Writes never block and never fail: past the log cap they are dropped.
const WRITE_BUDGET: usize = 64 * 1024;

impl OutputStream for CapturedStdio {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.log.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_BUDGET)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedStdio {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CapturedStdio {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.log.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collecting(max: usize) -> (Arc<TaskLog>, Arc<Mutex<Vec<TaskEvent>>>) {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = {
            let events = events.clone();
            Arc::new(move |event| events.lock().expect("lock").push(event))
        };
        (Arc::new(TaskLog::new(sink, max)), events)
    }

    fn messages(events: &Mutex<Vec<TaskEvent>>) -> Vec<String> {
        events
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|event| match event {
                TaskEvent::Log { message, .. } => Some(message.clone()),
                TaskEvent::Progress { .. } => None,
            })
            .collect()
    }

    #[test]
    fn stdout_is_split_into_lines_across_writes() {
        let (log, events) = collecting(1024);
        log.write(LogStream::Stdout, b"hel");
        log.write(LogStream::Stdout, b"lo\nwor");
        log.write(LogStream::Stdout, b"ld\n");
        log.write(LogStream::Stdout, b"tail");
        log.finish();
        assert_eq!(messages(&events), ["hello", "world", "tail"]);
    }

    #[test]
    fn logs_past_the_cap_are_dropped_with_one_notice() {
        let (log, events) = collecting(10 + 2 * RECORD_OVERHEAD);
        log.record(LogLevel::Info, "12345".into());
        log.record(LogLevel::Info, "1234567".into());
        log.record(LogLevel::Info, "1".into());
        let messages = messages(&events);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0], "12345");
        assert!(messages[1].starts_with("log truncated"), "{messages:?}");
    }

    #[test]
    fn empty_records_are_bounded_too() {
        let (log, events) = collecting(100 * RECORD_OVERHEAD);
        for _ in 0..10_000 {
            log.write(LogStream::Stdout, b"\n");
        }
        assert_eq!(messages(&events).len(), 100 + 1);
    }

    #[test]
    fn progress_reports_are_clamped_cut_and_bounded() {
        let (log, events) = collecting(1024);
        log.progress(7.0, Some("é".repeat(1000)));
        if let Some(TaskEvent::Progress { fraction, message }) = events.lock().expect("lock").pop()
        {
            assert_eq!(fraction, 1.0);
            assert!(message.expect("message").len() <= MAX_PROGRESS_MESSAGE);
        } else {
            panic!("a progress event");
        }
        for _ in 0..MAX_PROGRESS_EVENTS + 5 {
            log.progress(f32::NAN, None);
        }
        let events = events.lock().expect("lock");
        let progress = events
            .iter()
            .filter(|e| matches!(e, TaskEvent::Progress { fraction, .. } if *fraction == 0.0))
            .count();
        // One slot went to the first report, the last one to the notice.
        assert_eq!(progress as u32, MAX_PROGRESS_EVENTS - 2);
        assert!(matches!(
            events.last(),
            Some(TaskEvent::Log {
                stream: LogStream::Host,
                ..
            })
        ));
    }

    #[test]
    fn a_rust_panic_on_stderr_is_recognised() {
        let (log, _) = collecting(1024);
        log.write(
            LogStream::Stderr,
            b"\nthread '<unnamed>' panicked at src/lib.rs:10:5:\nboom\nnote: run with `RUST_BACKTRACE=1`\n",
        );
        assert_eq!(
            log.panic_message().as_deref(),
            Some("src/lib.rs:10:5: boom")
        );
    }
}
