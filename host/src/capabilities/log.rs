//! The `log` capability. Everything a call makes the host write — the guest's `log` calls,
//! stdout and stderr, and the host's own lines about the call (refused host calls) — goes to
//! the tracing log inside the span that names the monitor, under one budget per invocation: bytes *and* lines, empty lines
//! included. Past the budget, output is dropped and one line at the end of the call says how
//! much. Refused host calls are audited once per kind at the end of the call, with a count,
//! instead of one event each.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::audit::{Actor, AuditEvent, RefusalSink};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::sentinela::plugin as wit;
use wit::log::Level;
use wit::types::Error;

/// The tracing target of guest output, so operators can filter it (`RUST_LOG=sentinela::guest=warn`).
pub const TARGET: &str = "sentinela::guest";

/// stderr lines kept to explain a trap.
const STDERR_TAIL_LINES: usize = 8;

/// Distinct kinds of refused calls counted per invocation; the rest are counted as one.
const MAX_REFUSAL_KINDS: usize = 32;

/// What a refused call is counted under: (outcome, credential, service, operation, resource).
type RefusalKind = (&'static str, String, String, String, String);

/// One invocation's log sink. Clones share the budget.
#[derive(Clone)]
pub struct GuestLog {
    monitor: Arc<str>,
    state: Arc<Mutex<Budget>>,
    /// The monitor's budget over time, shared by all its calls.
    minute: Arc<MinuteBudget>,
}

/// A monitor's log lines per minute (`limits.log_lines_per_minute`), over all its calls: a
/// monitor within its per-call budget on a one-second schedule still writes a bounded number
/// of lines. Past it, lines are dropped until the minute ends, and one line at most each
/// minute says how many.
pub struct MinuteBudget {
    per_minute: u32,
    window: Mutex<Window>,
}

struct Window {
    started: std::time::Instant,
    used: u32,
    /// Dropped since the last line that said so.
    dropped: u64,
    said_at: Option<std::time::Instant>,
}

const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

impl MinuteBudget {
    /// A budget of `per_minute` lines, its minute starting now.
    pub fn new(per_minute: u32) -> Arc<MinuteBudget> {
        Arc::new(MinuteBudget {
            per_minute,
            window: Mutex::new(Window {
                started: std::time::Instant::now(),
                used: 0,
                dropped: 0,
                said_at: None,
            }),
        })
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one line from this minute's budget, or counts it as dropped.
    fn charge(&self) -> bool {
        let mut window = self.window();
        if window.started.elapsed() >= MINUTE {
            window.started = std::time::Instant::now();
            window.used = 0;
        }
        if window.used >= self.per_minute {
            window.dropped += 1;
            return false;
        }
        window.used += 1;
        true
    }

    /// Lines dropped since it was last said, when it is time to say it again (at most once
    /// a minute).
    fn take_dropped_to_say(&self) -> Option<u64> {
        let mut window = self.window();
        if window.dropped == 0 || window.said_at.is_some_and(|at| at.elapsed() < MINUTE) {
            return None;
        }
        window.said_at = Some(std::time::Instant::now());
        Some(std::mem::take(&mut window.dropped))
    }
}

struct Budget {
    bytes_left: usize,
    lines_left: usize,
    bytes_limit: usize,
    lines_limit: usize,
    dropped_lines: u64,
    dropped_bytes: u64,
    /// AWS requests this call may still send (`limits.aws_requests`), if capped.
    aws_requests_left: Option<u32>,
    refusals: BTreeMap<RefusalKind, u64>,
    /// The last lines the guest wrote to stderr: a Rust panic message ends up there, and it
    /// explains the trap that follows.
    stderr_tail: VecDeque<String>,
}

impl Budget {
    /// Takes one line of `bytes` from the budget, or counts it as dropped.
    fn charge(&mut self, bytes: usize) -> bool {
        if self.lines_left == 0 || bytes > self.bytes_left {
            self.dropped_lines += 1;
            self.dropped_bytes += bytes as u64;
            return false;
        }
        self.lines_left -= 1;
        self.bytes_left -= bytes;
        true
    }
}

impl GuestLog {
    /// A call's log with the budget of the monitor's `limits.log_bytes` and `limits.log_lines`,
    /// and its share of the monitor's `minute` budget.
    pub fn new(
        monitor: Arc<str>,
        bytes_limit: usize,
        lines_limit: usize,
        aws_requests: Option<u32>,
        minute: Arc<MinuteBudget>,
    ) -> GuestLog {
        GuestLog {
            monitor,
            minute,
            state: Arc::new(Mutex::new(Budget {
                bytes_left: bytes_limit,
                lines_left: lines_limit,
                bytes_limit,
                lines_limit,
                dropped_lines: 0,
                dropped_bytes: 0,
                aws_requests_left: aws_requests,
                refusals: BTreeMap::new(),
                stderr_tail: VecDeque::new(),
            })),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Budget> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Logs `message` at `level` if the budget allows; past the budget it is dropped and
    /// counted.
    pub fn emit(&self, level: Level, source: &'static str, message: &str) {
        let mut state = self.state();
        if !state.charge(message.len()) || !self.minute.charge() {
            return;
        }
        if source == "stderr" {
            if state.stderr_tail.len() == STDERR_TAIL_LINES {
                state.stderr_tail.pop_front();
            }
            state.stderr_tail.push_back(message.to_owned());
        }
        drop(state);
        // A guest cannot forge extra log lines or terminal escapes.
        let message = crate::guest_text::escape(message);
        // The monitor is a field of the enclosing `call` span's parent, not of each line.
        match level {
            Level::Trace => tracing::trace!(target: TARGET, source, "{message}"),
            Level::Debug => tracing::debug!(target: TARGET, source, "{message}"),
            Level::Info => tracing::info!(target: TARGET, source, "{message}"),
            Level::Warn => tracing::warn!(target: TARGET, source, "{message}"),
            Level::Error => tracing::error!(target: TARGET, source, "{message}"),
        }
    }

    /// Whether the host may write its line about a refused host call of this call; charged to
    /// the same budget as the guest's own output, at a typical refusal line's length.
    pub fn allow_refusal_line(&self) -> bool {
        const REFUSAL_LINE_BYTES: usize = 160;
        self.state().charge(REFUSAL_LINE_BYTES) && self.minute.charge()
    }

    /// Takes one AWS request from the call's allowance (`limits.aws_requests`), shared by
    /// `aws-call` and `queue`.
    pub fn take_aws_request(&self) -> Result<(), Error> {
        let mut state = self.state();
        match &mut state.aws_requests_left {
            None => Ok(()),
            Some(0) => Err(Error::Limit(format!(
                "monitor '{}' reached its limits.aws_requests cap for this call",
                self.monitor
            ))),
            Some(left) => {
                *left -= 1;
                Ok(())
            }
        }
    }

    /// An audit event of this call's monitor; refused uses are counted here, audited once per
    /// kind at the end of the call.
    pub fn audit(&self, credential: &str, service: &str, operation: &str) -> AuditEvent<'_> {
        AuditEvent::start(
            Actor::Monitor(&self.monitor),
            credential,
            service,
            operation,
        )
        .counting_refusals_in(self)
    }

    /// Ends the call: one audit event per kind of refused call (with its count) and one line
    /// for the output dropped past the budget.
    pub fn finish(&self) {
        let mut state = self.state();
        let refusals = std::mem::take(&mut state.refusals);
        let (dropped_lines, dropped_bytes) = (state.dropped_lines, state.dropped_bytes);
        let (bytes_limit, lines_limit) = (state.bytes_limit, state.lines_limit);
        state.dropped_lines = 0;
        state.dropped_bytes = 0;
        drop(state);
        let monitor = &*self.monitor;
        for ((outcome, credential, service, operation, resource), count) in refusals {
            crate::telemetry::METRICS.host_calls("monitor", &service, &operation, outcome, count);
            tracing::info!(
                target: crate::audit::TARGET,
                actor = "monitor",
                monitor,
                credential = credential.as_str(),
                service = service.as_str(),
                operation = operation.as_str(),
                resource = resource.as_str(),
                outcome,
                count,
                "refused calls"
            );
        }
        if dropped_lines > 0 {
            tracing::warn!(
                target: TARGET,
                dropped_lines,
                dropped_bytes,
                "log limit of {bytes_limit} bytes and {lines_limit} lines per call reached; \
                 dropped {dropped_lines} lines ({dropped_bytes} bytes)"
            );
        }
        if let Some(dropped_lines) = self.minute.take_dropped_to_say() {
            let per_minute = self.minute.per_minute;
            tracing::warn!(
                target: TARGET,
                dropped_lines,
                "log limit of {per_minute} lines per minute reached; dropped {dropped_lines} \
                 lines since this was last said"
            );
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

impl RefusalSink for GuestLog {
    /// Counts a refused host call, audited at the end of the call with the others of its kind.
    fn count_refusal(
        &self,
        outcome: &'static str,
        credential: &str,
        service: &str,
        operation: &str,
        resource: &str,
    ) {
        let mut state = self.state();
        let mut kind = (
            outcome,
            credential.to_owned(),
            service.to_owned(),
            operation.to_owned(),
            resource.to_owned(),
        );
        if !state.refusals.contains_key(&kind) && state.refusals.len() >= MAX_REFUSAL_KINDS {
            let any = || "*".to_owned();
            kind = (outcome, any(), any(), any(), any());
        }
        *state.refusals.entry(kind).or_default() += 1;
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

/// The interfaces this capability serves (the shared `types` have no functions).
pub const INTERFACES: &[&str] = &["types", "log"];

/// Links `log` (and `types`) for store data `T`; `get` finds the call's log in it.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut GuestLog,
) -> wasmtime::Result<()> {
    wit::types::add_to_linker::<T, HasSelf<GuestLog>>(linker, get)?;
    wit::log::add_to_linker::<T, HasSelf<GuestLog>>(linker, get)
}

impl wit::log::Host for GuestLog {
    async fn log(&mut self, level: Level, message: String) {
        self.emit(level, "log", &message);
    }
}

impl wit::types::Host for GuestLog {}
