//! The scheduler: cron triggers become `process_monitor` messages on the application queue.
//!
//! The scheduler never waits on the queue: each tick's message is sent by a task of its own
//! with [`SEND_DEADLINE`], so a hung queue delays no later tick and no shutdown. A tick that
//! cannot be sent is dropped (the monitor's next tick comes as usual): the first one after a
//! quiet period is logged at once, the rest are counted and reported every [`REPORT_EVERY`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::message::{Message, Task};

use super::{MonitorSet, Runtime, ScheduledMonitor};

/// How long one tick's send may take: under the shortest cron interval (one second).
pub const SEND_DEADLINE: Duration = Duration::from_millis(800);
/// How often ticks that could not be sent are reported, with their count.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// How long the scheduler sleeps when no monitor has a schedule (it wakes for reports and
/// shutdown anyway).
const IDLE: Duration = Duration::from_secs(3600);

/// Ticks not sent since the last report.
#[derive(Default)]
struct UnsentTicks {
    count: u64,
    last_error: String,
}

impl UnsentTicks {
    /// Counts one; the first of a quiet period is logged at once, with its monitor.
    fn record(&mut self, monitor: &str, error: String) {
        if self.count == 0 {
            tracing::error!(monitor, "cannot queue monitor tasks: {error}");
        }
        self.count += 1;
        self.last_error = error;
    }

    /// The report of the period that ends: nothing when every tick was sent.
    fn report(&mut self) {
        if self.count > 1 {
            tracing::warn!(
                unsent_ticks = self.count,
                period_s = REPORT_EVERY.as_secs(),
                "{} monitor ticks could not be queued in the last {}s; last error: {}",
                self.count,
                REPORT_EVERY.as_secs(),
                self.last_error
            );
        }
        self.count = 0;
    }
}

/// Each scheduled task's monitor, by monitor name and task, and the next trigger times in a
/// min-heap: a wake-up looks at the due tasks only, and the time to sleep until is the
/// heap's top (with 10,000 monitors, scanning every trigger at each wake-up was a fifth of
/// the process's CPU).
#[derive(Default)]
struct Triggers {
    monitors: HashMap<(String, Task), Arc<ScheduledMonitor>>,
    times: BinaryHeap<Reverse<(DateTime<Utc>, String, Task)>>,
}

impl Triggers {
    /// The next trigger's time.
    fn next_at(&self) -> Option<DateTime<Utc>> {
        self.times.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Takes the tasks due at `now`, by monitor, and schedules each one's next trigger.
    fn take_due(
        &mut self,
        now: DateTime<Utc>,
    ) -> HashMap<String, (Arc<ScheduledMonitor>, Vec<Task>)> {
        let mut due: HashMap<String, (Arc<ScheduledMonitor>, Vec<Task>)> = HashMap::new();
        while self.next_at().is_some_and(|at| at <= now) {
            let Some(Reverse((_, name, task))) = self.times.pop() else {
                break;
            };
            let Some(monitor) = self.monitors.get(&(name.clone(), task)) else {
                continue;
            };
            let monitor = monitor.clone();
            if let Some(at) = monitor
                .cron(task == Task::Search)
                .and_then(|c| c.next_after(now))
            {
                self.times.push(Reverse((at, name.clone(), task)));
            }
            due.entry(name)
                .or_insert_with(|| (monitor, Vec::new()))
                .1
                .push(task);
        }
        due
    }
}

/// Each scheduled task's next trigger. Cron times are absolute, so computing them again after
/// a config reload moves no trigger of an unchanged monitor.
fn next_triggers(monitors: &MonitorSet) -> Triggers {
    let now = Utc::now();
    let mut next = Triggers::default();
    for monitor in monitors.iter() {
        for task in [Task::Search, Task::Update] {
            if let Some(at) = monitor
                .cron(task == Task::Search)
                .and_then(|c| c.next_after(now))
            {
                let name = monitor.name().to_owned();
                next.times.push(Reverse((at, name.clone(), task)));
                next.monitors.insert((name, task), monitor.clone());
            }
        }
    }
    next
}

impl Runtime {
    pub(super) async fn schedule(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut changed = self.monitors_changed();
        let mut next = next_triggers(&self.monitors());
        let mut sends: JoinSet<Option<(Arc<ScheduledMonitor>, String)>> = JoinSet::new();
        let mut unsent = UnsentTicks::default();
        let mut reports = tokio::time::interval(REPORT_EVERY);
        loop {
            let wake = next.next_at();
            let sleep = wake
                .map(|at| (at - Utc::now()).to_std().unwrap_or_default())
                .unwrap_or(IDLE);
            tokio::select! {
                _ = stop.changed() => break,
                Ok(()) = changed.changed() => {
                    next = next_triggers(&self.monitors());
                    continue;
                }
                _ = tokio::time::sleep(sleep), if wake.is_some() => {}
                Some(sent) = sends.join_next() => {
                    if let Ok(Some((monitor, error))) = sent {
                        unsent.record(monitor.name(), error);
                    }
                    continue;
                }
                _ = reports.tick() => {
                    unsent.report();
                    continue;
                }
            }
            for (_, (monitor, mut tasks)) in next.take_due(Utc::now()) {
                tasks.sort_by_key(|t| *t == Task::Update);
                if let Some(send) = self.clone().trigger(monitor, tasks) {
                    sends.spawn(send);
                }
            }
        }
        // Ticks still being sent are dropped; they are recomputed at the next start.
        sends.abort_all();
        unsent.report();
    }

    /// The send of a `process_monitor` message, or `None` when the tick is skipped: with the
    /// in-process queue, a monitor that is still queued or running is not triggered again; a
    /// shared queue's consumers are other processes, so there each executor skips a monitor
    /// it is already running. The send yields the monitor and the error when it fails.
    fn trigger(
        self: Arc<Self>,
        monitor: Arc<ScheduledMonitor>,
        tasks: Vec<Task>,
    ) -> Option<impl Future<Output = Option<(Arc<ScheduledMonitor>, String)>> + use<>> {
        if self.is_disabled(&monitor) {
            tracing::debug!(monitor = monitor.name(), "disabled; trigger skipped");
            return None;
        }
        let gate = !self.queue.is_shared();
        if gate && monitor.backing_off() {
            return None;
        }
        if gate && !monitor.claim() {
            tracing::debug!(
                monitor = monitor.name(),
                "still queued or running; trigger skipped"
            );
            return None;
        }
        let body = Message::process_monitor(monitor.name(), tasks).to_json();
        Some(async move {
            let sent = tokio::time::timeout(SEND_DEADLINE, self.queue.send(body)).await;
            crate::telemetry::queue_reachable(matches!(sent, Ok(Ok(_))));
            let error = match sent {
                Ok(Ok(message_id)) => {
                    tracing::debug!(
                        monitor = monitor.name(),
                        message_id = message_id.as_deref().unwrap_or(""),
                        "queued monitor tasks"
                    );
                    return None;
                }
                Ok(Err(e)) => format!("{e:#}"),
                Err(_) => format!("the application queue did not answer within {SEND_DEADLINE:?}"),
            };
            if gate {
                monitor.release();
            }
            Some((monitor, error))
        })
    }
}
