//! Where log lines go: off the executor's workers. A line formatted on a worker is handed to
//! a writer thread of its own through a bounded queue (tracing-appender's non-blocking
//! writer) and written in batches: the thread writes through a buffer that it flushes each
//! time the queue is empty, so a burst of lines costs a few `write(2)`s, not one per line,
//! and a slow reader of stderr (a full pipe, a stalled log collector) never blocks a worker.
//!
//! A full queue drops the line rather than stall a task. Drops are counted:
//! `sentinela_log_lines_dropped_total`, and one warning per [`REPORT_EVERY`] with how many.
//! The queue is flushed when the process ends normally (the guard [`stderr`] returns is held
//! by `main`: a clean SIGTERM shutdown, an error, a panic that unwinds `main`). A `kill -9`
//! loses what is queued, at most [`QUEUE_LINES`] lines and normally the last milliseconds'.

use std::sync::OnceLock;
use std::time::Duration;

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};

use super::METRICS;

/// Lines the queue holds before new ones are dropped: a second and more of the lines of
/// 10,000 tasks a second, in well under a megabyte of slots.
pub const QUEUE_LINES: usize = 16 * 1024;
/// Bytes the writer thread gathers before a `write(2)` (it also writes whenever the queue
/// runs empty).
const BATCH_BYTES: usize = 64 * 1024;
/// How often dropped lines are reported.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// The non-blocking writer to stderr, and the guard that flushes it when dropped.
pub fn stderr() -> (NonBlocking, WorkerGuard) {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .thread_name("sentinela-log")
        .finish(std::io::BufWriter::with_capacity(
            BATCH_BYTES,
            std::io::stderr(),
        ));
    let _ = DROPPED.set(writer.error_counter());
    (writer, guard)
}

/// Brings `sentinela_log_lines_dropped_total` up to date; returns the lines dropped since
/// the last call.
pub fn count_dropped() -> u64 {
    let Some(dropped) = DROPPED.get() else {
        return 0;
    };
    let total = dropped.dropped_lines() as u64;
    let counted = METRICS.log_lines_dropped.get();
    if total <= counted {
        return 0;
    }
    METRICS.log_lines_dropped.inc_by(total - counted);
    total - counted
}

/// Reports dropped lines every [`REPORT_EVERY`], with one warning each time some were.
/// Runs until dropped.
pub async fn report_drops() {
    loop {
        tokio::time::sleep(REPORT_EVERY).await;
        let dropped = count_dropped();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "log lines dropped: the log writer could not keep up (its queue holds {QUEUE_LINES} lines)"
            );
        }
    }
}
