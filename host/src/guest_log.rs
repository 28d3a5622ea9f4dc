//! Everything a guest writes — `log` calls, stdout and stderr — goes to the host's tracing
//! log, tagged with the monitor's name, under one byte budget per invocation.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::bindings::sentinela::plugin::log::Level;

/// The tracing target of guest output, so operators can filter it (`RUST_LOG=sentinela::guest=warn`).
pub const TARGET: &str = "sentinela::guest";

/// stderr lines kept to explain a trap.
const STDERR_TAIL_LINES: usize = 8;

/// One invocation's log sink. Clones share the budget.
#[derive(Clone)]
pub struct GuestLog {
    monitor: Arc<str>,
    state: Arc<Mutex<Budget>>,
}

struct Budget {
    remaining: usize,
    limit: usize,
    truncated: bool,
    /// The last lines the guest wrote to stderr: a Rust panic message ends up there, and it
    /// explains the trap that follows.
    stderr_tail: VecDeque<String>,
}

impl GuestLog {
    pub fn new(monitor: Arc<str>, limit: usize) -> GuestLog {
        GuestLog {
            monitor,
            state: Arc::new(Mutex::new(Budget {
                remaining: limit,
                limit,
                truncated: false,
                stderr_tail: VecDeque::new(),
            })),
        }
    }

    /// Logs `message` at `level` if the budget allows; past the budget, output is dropped and
    /// one warning says so.
    pub fn emit(&self, level: Level, source: &'static str, message: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if message.len() > state.remaining {
            if !state.truncated {
                state.truncated = true;
                let limit = state.limit;
                drop(state);
                tracing::warn!(
                    target: TARGET,
                    monitor = %self.monitor,
                    "log limit of {limit} bytes per invocation reached; dropping further output"
                );
            }
            return;
        }
        state.remaining -= message.len();
        if source == "stderr" {
            if state.stderr_tail.len() == STDERR_TAIL_LINES {
                state.stderr_tail.pop_front();
            }
            state.stderr_tail.push_back(message.to_owned());
        }
        drop(state);
        let message = escape_control(message);
        let monitor = &*self.monitor;
        match level {
            Level::Trace => tracing::trace!(target: TARGET, monitor, source, "{message}"),
            Level::Debug => tracing::debug!(target: TARGET, monitor, source, "{message}"),
            Level::Info => tracing::info!(target: TARGET, monitor, source, "{message}"),
            Level::Warn => tracing::warn!(target: TARGET, monitor, source, "{message}"),
            Level::Error => tracing::error!(target: TARGET, monitor, source, "{message}"),
        }
    }

    /// The panic message the guest printed, if it printed one: Rust's panic hook writes
    /// "thread '…' panicked at FILE:LINE:COL:" and the message on the next line.
    pub fn panic_message(&self) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let tail = &state.stderr_tail;
        let at = tail.iter().rposition(|line| line.contains("panicked at"))?;
        let location = tail[at]
            .split_once("panicked at ")
            .map_or("", |(_, l)| l.trim_end_matches(':'));
        let message = tail.get(at + 1).map(String::as_str).unwrap_or("");
        Some(format!("{message} (at {location})"))
    }

    /// A WASI stdout/stderr that writes here, one log event per line.
    pub fn stream(&self, source: &'static str, level: Level) -> GuestOutput {
        GuestOutput {
            log: self.clone(),
            source,
            level,
        }
    }
}

/// A guest cannot forge extra log lines or terminal escapes: control characters are shown
/// escaped.
fn escape_control(message: &str) -> std::borrow::Cow<'_, str> {
    if message.chars().any(char::is_control) {
        message
            .chars()
            .flat_map(char::escape_default)
            .collect::<String>()
            .into()
    } else {
        message.into()
    }
}

/// Guest stdout or stderr.
pub struct GuestOutput {
    log: GuestLog,
    source: &'static str,
    level: Level,
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter {
            log: self.log.clone(),
            source: self.source,
            level: self.level,
            line: Vec::new(),
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASIp3 guests use this; they get a sink. WASIp2 guests use `p2_stream`.
        Box::new(tokio::io::sink())
    }
}

/// Splits a byte stream into lines; a line longer than the budget is cut by the budget.
struct LineWriter {
    log: GuestLog,
    source: &'static str,
    level: Level,
    line: Vec<u8>,
}

impl LineWriter {
    const MAX_LINE: usize = 16 << 10;

    fn emit_line(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        self.log.emit(self.level, self.source, text);
        self.line.clear();
    }
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            let room = Self::MAX_LINE.saturating_sub(self.line.len());
            let (body, ends_line) = match chunk.strip_suffix(b"\n") {
                Some(body) => (body, true),
                None => (chunk, false),
            };
            self.line.extend_from_slice(&body[..body.len().min(room)]);
            if ends_line || self.line.len() >= Self::MAX_LINE {
                self.emit_line();
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit_line();
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl crate::bindings::sentinela::plugin::log::Host for crate::sandbox::InstanceState {
    async fn log(&mut self, level: Level, message: String) {
        self.log.emit(level, "log", &message);
    }
}

impl crate::bindings::sentinela::plugin::types::Host for crate::sandbox::InstanceState {}
