//! The scheduler: cron triggers become `process_monitor` messages on the application queue.
//!
//! Each monitor fires at its cron times plus a fixed phase of its own, under
//! `controller.spread` (1 s by default) and derived from its name: a thousand monitors on
//! the same cron arrive over that window, not all in one instant, and each one's rhythm is
//! unchanged (and the same after a restart). The message carries the time it was due, so an
//! executor measures the lag from there to the task's start.
//!
//! The scheduler never waits on the queue: each tick's message is sent by a task of its own
//! with [`SEND_DEADLINE`], so a hung queue delays no later tick and no shutdown. A tick that
//! cannot be sent is dropped (the monitor's next tick comes as usual): the first one after a
//! quiet period is logged at once, the rest are counted and reported every [`REPORT_EVERY`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
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

/// `controller:`: how the scheduler spreads triggers.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerConfig {
    /// `controller.spread`: each monitor fires up to this long after its cron times, at a
    /// phase of its own; `0` fires every monitor on the cron's instant.
    #[serde(default = "ControllerConfig::default_spread")]
    pub spread: Spread,
}

impl ControllerConfig {
    fn default_spread() -> Spread {
        Spread(Duration::from_secs(1))
    }
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            spread: Self::default_spread(),
        }
    }
}

/// A `controller.spread`: from 0 to [`Spread::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread(pub Duration);

impl Spread {
    /// The longest spread: a monitor may run this long after its cron time.
    pub const MAX: Duration = Duration::from_secs(3600);

    /// Phases are multiples of this: monitors sharing a step arrive together and share the
    /// store's batched reads and one wake-up of each thread. At every millisecond of their
    /// own, 1,000 monitors at 1 Hz took 80 % more CPU than all in one instant; in 10 ms
    /// steps a step's tasks still start within a few milliseconds.
    pub const STEP: Duration = Duration::from_millis(10);

    /// The monitor's phase: a fixed step in the spread, from a hash of its name (the
    /// standard library's SipHash with its fixed keys: the same on every run of a build).
    pub fn phase(self, monitor: &str) -> chrono::Duration {
        let steps = (self.0.as_millis() / Self::STEP.as_millis()) as u64;
        if steps == 0 {
            return chrono::Duration::zero();
        }
        let mut hasher = std::hash::DefaultHasher::new();
        monitor.hash(&mut hasher);
        let step = (hasher.finish() % steps) as i64;
        chrono::Duration::milliseconds(step * Self::STEP.as_millis() as i64)
    }
}

impl<'de> Deserialize<'de> for Spread {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let duration = crate::config::values::ConfigDuration::deserialize_unbounded(deserializer)?;
        if duration > Self::MAX {
            return Err(serde::de::Error::custom(format!(
                "spread must be at most {}s, got {duration:?}",
                Self::MAX.as_secs()
            )));
        }
        Ok(Spread(duration))
    }
}

/// Each scheduled task (a monitor's search or update) and the next trigger times in a
/// min-heap: a wake-up looks at the due tasks only, and the time to sleep until is the
/// heap's top (with 10,000 monitors, scanning every trigger at each wake-up was a fifth of
/// the process's CPU). The heap holds indices, so a trigger clones no name.
struct Triggers {
    scheduled: Vec<ScheduledTask>,
    times: BinaryHeap<Reverse<(DateTime<Utc>, usize)>>,
}

/// A monitor's task on the schedule.
struct ScheduledTask {
    monitor: Arc<ScheduledMonitor>,
    /// The monitor's place in the set: its search and update share it.
    monitor_index: usize,
    task: Task,
    /// The monitor's phase under `controller.spread`.
    phase: chrono::Duration,
}

impl ScheduledTask {
    /// When it is next due after `now`: its next cron time plus the monitor's phase.
    fn next_due(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let search = self.task == Task::Search;
        Some(self.monitor.next_cron_time(search, now - self.phase)? + self.phase)
    }
}

/// A monitor's tasks due at one wake-up, and when the first of them was due.
struct Due {
    monitor: Arc<ScheduledMonitor>,
    tasks: Vec<Task>,
    at: DateTime<Utc>,
}

impl Triggers {
    /// Each scheduled task's next trigger. Cron times are absolute and phases fixed, so
    /// computing them again after a config reload moves no trigger of an unchanged monitor.
    fn new(monitors: &MonitorSet, spread: Spread, now: DateTime<Utc>) -> Triggers {
        let mut triggers = Triggers {
            scheduled: Vec::with_capacity(2 * monitors.len()),
            times: BinaryHeap::new(),
        };
        for (monitor_index, monitor) in monitors.iter().enumerate() {
            let phase = spread.phase(monitor.name());
            for task in [Task::Search, Task::Update] {
                let scheduled = ScheduledTask {
                    monitor: monitor.clone(),
                    monitor_index,
                    task,
                    phase,
                };
                if let Some(at) = scheduled.next_due(now) {
                    triggers.times.push(Reverse((at, triggers.scheduled.len())));
                    triggers.scheduled.push(scheduled);
                }
            }
        }
        triggers
    }

    /// The next trigger's time.
    fn next_at(&self) -> Option<DateTime<Utc>> {
        self.times.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the tasks due at `now`, by monitor, and schedules each one's next trigger.
    fn take_due(&mut self, now: DateTime<Utc>) -> Vec<Due> {
        let mut due: Vec<Due> = Vec::new();
        // Each monitor's place in `due`.
        let mut of_monitor: HashMap<usize, usize> = HashMap::new();
        while let Some(&Reverse((at, index))) = self.times.peek() {
            if at > now {
                break;
            }
            self.times.pop();
            let scheduled = &self.scheduled[index];
            if let Some(next) = scheduled.next_due(now) {
                self.times.push(Reverse((next, index)));
            }
            let place = *of_monitor
                .entry(scheduled.monitor_index)
                .or_insert_with(|| {
                    due.push(Due {
                        monitor: scheduled.monitor.clone(),
                        tasks: Vec::with_capacity(2),
                        at,
                    });
                    due.len() - 1
                });
            let due = &mut due[place];
            due.tasks.push(scheduled.task);
            due.at = due.at.min(at);
        }
        due
    }
}

impl Runtime {
    pub(super) async fn schedule(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut changed = self.monitors_changed();
        let mut next = Triggers::new(&self.monitors(), self.options.spread, Utc::now());
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
                    // What is due by now fires first (for the monitors still in the set): the
                    // new triggers start after `now`, so a change (a monitor whose compile
                    // finished, a reload) never costs a running monitor its tick.
                    let now = Utc::now();
                    let monitors = self.monitors();
                    for due in next.take_due(now) {
                        if monitors.get(due.monitor.name()).is_some() {
                            self.fire(due, &mut sends);
                        }
                    }
                    next = Triggers::new(&monitors, self.options.spread, now);
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
            for due in next.take_due(Utc::now()) {
                self.fire(due, &mut sends);
            }
        }
        // Ticks still being sent are dropped; they are recomputed at the next start.
        sends.abort_all();
        unsent.report();
    }

    /// Triggers a monitor's due tasks (its search before its update).
    fn fire(
        self: &Arc<Self>,
        mut due: Due,
        sends: &mut JoinSet<Option<(Arc<ScheduledMonitor>, String)>>,
    ) {
        due.tasks.sort_by_key(|t| *t == Task::Update);
        if let Some(send) = self.clone().trigger(due) {
            sends.spawn(send);
        }
    }

    /// The send of a `process_monitor` message, or `None` when the tick is skipped: with the
    /// in-process queue, a monitor that is still queued or running is not triggered again; a
    /// shared queue's consumers are other processes, so there each executor skips a monitor
    /// it is already running. The send yields the monitor and the error when it fails.
    fn trigger(
        self: Arc<Self>,
        Due { monitor, tasks, at }: Due,
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
            let sent =
                tokio::time::timeout(SEND_DEADLINE, self.queue.send(body, Some(at.into()))).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_is_fixed_per_name_and_falls_in_the_spread() {
        let spread = Spread(Duration::from_millis(800));
        let phases: Vec<_> = (0..200)
            .map(|i| spread.phase(&format!("m{i}")).num_milliseconds())
            .collect();
        assert!(
            phases.iter().all(|p| (0..800).contains(p) && p % 10 == 0),
            "{phases:?}"
        );
        assert_eq!(phases[7], spread.phase("m7").num_milliseconds());
        // Spread over the window, not bunched: every 100 ms eighth holds some of 200.
        for eighth in 0..8 {
            assert!(phases.iter().any(|p| p / 100 == eighth), "{phases:?}");
        }
        assert_eq!(Spread(Duration::ZERO).phase("m7"), chrono::Duration::zero());
        assert_eq!(
            Spread(Duration::from_millis(9)).phase("m7"),
            chrono::Duration::zero()
        );
    }

    #[test]
    fn a_spread_over_an_hour_is_refused() {
        let spread = |yaml: &str| serde_yaml::from_str::<ControllerConfig>(yaml);
        assert_eq!(
            spread("spread: 250ms").unwrap().spread.0,
            Duration::from_millis(250)
        );
        assert_eq!(spread("{}").unwrap().spread.0, Duration::from_secs(1));
        assert_eq!(spread("spread: 0").unwrap().spread.0, Duration::ZERO);
        assert_eq!(spread("spread: 0s").unwrap().spread.0, Duration::ZERO);
        let refused = spread("spread: 2h").unwrap_err().to_string();
        assert!(
            refused.contains("spread must be at most 3600s"),
            "{refused}"
        );
    }
}
