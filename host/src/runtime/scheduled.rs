//! A monitor's run-time state: whether it is queued or running, and its deadline backoff.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::config::MonitorConfig;
use crate::monitor::MonitorPlugin;

use super::lock;

/// A monitor as the runtime sees it.
pub struct ScheduledMonitor {
    /// The loaded component and the config entry it was loaded for; replaced when the file
    /// changes ([`ScheduledMonitor::replace`]) or the config does ([`ScheduledMonitor::update`]).
    current: RwLock<(Arc<MonitorPlugin>, Arc<MonitorConfig>)>,
    /// The config name, also the plugin's; the same for the monitor's whole life.
    name: Arc<str>,
    /// Set while a `process_monitor` message for it is queued or running, so a slow monitor
    /// is not triggered again on top of itself (Sentinela's `queued`/`running` flags).
    busy: AtomicBool,
    /// Tasks that hit the deadline in a row, and until when the monitor is not run because of
    /// them: a monitor that keeps spinning to its deadline cannot keep the executor's slots
    /// from the others.
    pub(super) backoff: Mutex<Backoff>,
    /// Its task counters and durations in the metrics.
    pub(super) task_series: crate::telemetry::TaskSeries,
    /// How its export calls end: counted, and whether it is failing.
    pub calls: crate::telemetry::calls::CallHealth,
}

/// A monitor's deadline backoff: after the n-th deadline in a row it is not run for
/// 2^(n-1) s, at most [`MAX_BACKOFF`]; a task that ends in time resets it.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    strikes: u32,
    until: Option<Instant>,
    /// Triggers skipped because of it, since start.
    pub(super) skipped: u64,
}

const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl ScheduledMonitor {
    /// A monitor neither queued nor backing off, running `plugin` as `config` describes.
    pub fn new(plugin: Arc<MonitorPlugin>, config: Arc<MonitorConfig>) -> Self {
        ScheduledMonitor {
            name: plugin.name.clone(),
            task_series: crate::telemetry::TaskSeries::new(plugin.name.clone()),
            calls: crate::telemetry::calls::CallHealth::new(plugin.name.clone()),
            current: RwLock::new((plugin, config)),
            busy: AtomicBool::new(false),
            backoff: Mutex::new(Backoff::default()),
        }
    }

    /// The monitor's config name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin version to call now; a call keeps its version to the end, whatever
    /// replaces it meanwhile.
    pub fn plugin(&self) -> Arc<MonitorPlugin> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// The config entry the monitor runs with now.
    pub fn config(&self) -> Arc<MonitorConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    /// The config `id` messages may address it by.
    pub fn id(&self) -> Option<u64> {
        self.config().id
    }

    /// The first cron time of `search` (`Task::Search`) or `update` strictly after `after`;
    /// `None` when it runs only on request.
    pub fn next_cron_time(
        &self,
        search: bool,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        let config = &current.1;
        let cron = if search {
            &config.search_cron
        } else {
            &config.update_cron
        };
        cron.as_ref()?.next_after(after)
    }

    /// Swaps in a new version of the plugin file, loaded for `config`: calls that start from
    /// now on use it. False (and nothing swapped) if the config entry changed meanwhile.
    pub fn replace(&self, plugin: Arc<MonitorPlugin>, config: &Arc<MonitorConfig>) -> bool {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&current.1, config) {
            return false;
        }
        current.0 = plugin;
        true
    }

    /// Swaps in the optimized code of the plugin `baseline`, loaded for `config`: false (and
    /// nothing swapped) if the monitor runs anything else by now (a reload, a changed entry).
    pub fn tier_up(
        &self,
        baseline: &Arc<MonitorPlugin>,
        optimized: Arc<MonitorPlugin>,
        config: &Arc<MonitorConfig>,
    ) -> bool {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&current.0, baseline) || !Arc::ptr_eq(&current.1, config) {
            return false;
        }
        current.0 = optimized;
        true
    }

    /// Swaps in a changed config entry and the plugin loaded for it (new limits, grants,
    /// settings or file), keeping the queued/running flag and the backoff.
    pub fn update(&self, plugin: Arc<MonitorPlugin>, config: Arc<MonitorConfig>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = (plugin, config);
    }

    /// Marks the monitor queued or running; false if it already was.
    pub(super) fn claim(&self) -> bool {
        !self.busy.swap(true, Ordering::AcqRel)
    }

    /// Marks the monitor neither queued nor running.
    pub(super) fn release(&self) {
        self.busy.store(false, Ordering::Release);
    }

    /// Whether the monitor is backing off now; counts the skipped trigger.
    pub(super) fn backing_off(&self) -> bool {
        let mut backoff = lock(&self.backoff);
        match backoff.until {
            Some(until) if Instant::now() < until => {
                backoff.skipped += 1;
                tracing::debug!(
                    monitor = self.name(),
                    skipped = backoff.skipped,
                    "backing off after deadlines; trigger skipped"
                );
                true
            }
            _ => false,
        }
    }

    /// Whether the monitor's last task hit its deadline.
    pub(super) fn is_suspect(&self) -> bool {
        lock(&self.backoff).strikes > 0
    }

    /// Records how a task ended: a deadline extends the backoff, anything else resets it.
    pub(super) fn record_outcome(&self, hit_deadline: bool) {
        let mut backoff = lock(&self.backoff);
        if !hit_deadline {
            if backoff.strikes > 0 {
                tracing::info!(
                    monitor = self.name(),
                    deadlines_in_a_row = backoff.strikes,
                    "monitor ended within its deadline again; backoff over"
                );
            }
            backoff.strikes = 0;
            backoff.until = None;
            return;
        }
        backoff.strikes = backoff.strikes.saturating_add(1);
        let pause =
            Duration::from_secs(1u64 << backoff.strikes.saturating_sub(1).min(16)).min(MAX_BACKOFF);
        backoff.until = Some(Instant::now() + pause);
        // Said when the backoff starts, then once a minute at most (a pause of a minute or
        // more means the last strike was that long ago); the strikes between are debug lines.
        if backoff.strikes == 1 || pause >= Duration::from_secs(60) {
            tracing::warn!(
                monitor = self.name(),
                deadlines_in_a_row = backoff.strikes,
                backoff_s = pause.as_secs(),
                skipped_so_far = backoff.skipped,
                "monitor hit its deadline; not running it for {}s so it cannot hold the executor's slots",
                pause.as_secs()
            );
        } else {
            tracing::debug!(
                monitor = self.name(),
                deadlines_in_a_row = backoff.strikes,
                backoff_s = pause.as_secs(),
                "monitor hit its deadline again; backing off longer"
            );
        }
    }
}
