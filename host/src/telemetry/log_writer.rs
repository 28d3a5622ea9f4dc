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

/// Lines dropped since the start.
fn dropped_total() -> u64 {
    DROPPED.get().map_or(0, |d| d.dropped_lines() as u64)
}

/// Brings `sentinela_log_lines_dropped_total` up to date (a scrape calls it, and so does the
/// reporter).
pub fn count_dropped() {
    let total = dropped_total();
    let counted = METRICS.log_lines_dropped.get();
    if total > counted {
        METRICS.log_lines_dropped.inc_by(total - counted);
    }
}

/// Reports dropped lines every [`REPORT_EVERY`], with one warning each time some were since
/// the last warning (whoever brought the metric up to date meanwhile). Runs until dropped.
pub async fn report_drops() {
    let mut reported = 0;
    loop {
        tokio::time::sleep(REPORT_EVERY).await;
        count_dropped();
        let total = dropped_total();
        if total > reported {
            tracing::warn!(
                dropped = total - reported,
                "log lines dropped: the log writer could not keep up (its queue holds {QUEUE_LINES} lines)"
            );
            reported = total;
        }
    }
}
