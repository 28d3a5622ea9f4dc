//! `sentinela run`: the [`scheduler`] turns cron triggers into `process_monitor` messages on
//! the application queue; the [`executor`] receives messages and runs each one's [`tasks`],
//! each call in a fresh instance, at most `executor.concurrency` at a time.

mod executor;
mod scheduled;
mod scheduler;
mod tasks;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Result;
use tokio::sync::{Semaphore, watch};

use crate::issues::{IssueStore, LastRun};
use crate::queue::ApplicationQueue;

pub use executor::{Concurrency, ExecutorConfig};
pub use scheduler::{ControllerConfig, Spread};

/// How often a process reads which monitors are switched off (another process may have
/// switched one).
pub const DISABLED_REFRESH: Duration = Duration::from_secs(5);

/// How long past its expected end a queue or store call may run before a warning says so.
pub const SLOW_AFTER: Duration = Duration::from_secs(4);
/// How often each monitor's last run is written to the store, all in one transaction: a
/// monitor that runs every second costs no write per task.
pub const LAST_RUN_FLUSH: Duration = Duration::from_secs(10);
pub use scheduled::ScheduledMonitor;
pub use tasks::TaskError;

/// What this process does: schedule (controller), execute (executor), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Schedule and execute (one process, the default).
    All,
    /// Schedule only: enqueue the monitors' tasks for executors.
    Controller,
    /// Execute only: run the tasks other processes enqueue.
    Executor,
}

/// How `sentinela run` runs, from the command line and the config's `executor:`.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Schedule, execute, or both.
    pub role: Role,
    /// Tasks executed at once.
    pub concurrency: usize,
    /// How often a message in process has its visibility extended (`queue_visibility_time`).
    pub heartbeat: Duration,
    /// How long running tasks may take to finish after SIGTERM before their messages are
    /// released back to the queue.
    pub shutdown_grace: Duration,
    /// `controller.spread`: the window each monitor's phase falls in.
    pub spread: Spread,
}

/// The monitors a process runs, by name and by config `id`. Replaced whole when the config is
/// reloaded; tasks already running keep the monitor they started with.
#[derive(Default)]
pub struct MonitorSet {
    by_name: HashMap<String, Arc<ScheduledMonitor>>,
    /// Monitor names by config `id`, for messages that address monitors Sentinela's way.
    ids: HashMap<u64, String>,
}

impl MonitorSet {
    /// A set of these monitors (their names and ids are unique: the config says so).
    pub fn new(monitors: impl IntoIterator<Item = Arc<ScheduledMonitor>>) -> MonitorSet {
        let mut set = MonitorSet::default();
        for monitor in monitors {
            if let Some(id) = monitor.id() {
                set.ids.insert(id, monitor.name().to_owned());
            }
            set.by_name.insert(monitor.name().to_owned(), monitor);
        }
        set
    }

    /// The monitor of that config name.
    pub fn get(&self, name: &str) -> Option<&Arc<ScheduledMonitor>> {
        self.by_name.get(name)
    }

    /// The monitor a message addresses: by name, or by its config `id`.
    pub fn find(&self, monitor_id: &str) -> Option<&Arc<ScheduledMonitor>> {
        self.by_name.get(monitor_id).or_else(|| {
            let name = self.ids.get(&monitor_id.parse::<u64>().ok()?)?;
            self.by_name.get(name)
        })
    }

    /// Every monitor, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<ScheduledMonitor>> {
        self.by_name.values()
    }

    /// How many monitors.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The monitors, the application queue and the issue store of a running process.
pub struct Runtime {
    monitors: std::sync::RwLock<Arc<MonitorSet>>,
    /// Bumped each time the monitor set is replaced: the scheduler and the plugin watcher
    /// follow it.
    monitors_changed: watch::Sender<u64>,
    /// Bumped (under the set's write lock) each time a config reload replaces the set: a
    /// monitor loaded after the start is added only to the set it was loaded for.
    replacements: std::sync::atomic::AtomicU64,
    /// Monitors switched off (`monitor_disable`), as the store said at the last look: read
    /// every [`DISABLED_REFRESH`], and at once when this process switches one.
    disabled: std::sync::RwLock<std::collections::HashSet<String>>,
    queue: Arc<ApplicationQueue>,
    issues: Arc<IssueStore>,
    options: RuntimeOptions,
    /// Each monitor's last run since the last flush to the store ([`LAST_RUN_FLUSH`]).
    last_runs: Mutex<HashMap<String, LastRun>>,
    /// Slots monitors whose last task hit its deadline may hold together: one fewer than
    /// `executor.concurrency` (when there are two or more), so at least one slot is always
    /// left to monitors that end in time.
    suspect_slots: Arc<Semaphore>,
}

impl Runtime {
    /// A runtime for these monitors; nothing runs before [`Runtime::run`].
    pub fn new(
        monitors: Vec<ScheduledMonitor>,
        queue: ApplicationQueue,
        issues: IssueStore,
        options: RuntimeOptions,
    ) -> Runtime {
        Runtime {
            monitors: std::sync::RwLock::new(Arc::new(MonitorSet::new(
                monitors.into_iter().map(Arc::new),
            ))),
            monitors_changed: watch::channel(0).0,
            replacements: Default::default(),
            last_runs: Mutex::default(),
            disabled: Default::default(),
            queue: Arc::new(queue),
            issues: Arc::new(issues),
            suspect_slots: Arc::new(Semaphore::new(options.concurrency.saturating_sub(1).max(1))),
            options,
        }
    }

    /// The monitors running now.
    pub fn monitors(&self) -> Arc<MonitorSet> {
        self.monitors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The monitor of that config name.
    pub fn monitor(&self, name: &str) -> Option<Arc<ScheduledMonitor>> {
        self.monitors().get(name).cloned()
    }

    /// The monitor a message addresses: by name, or by its config `id`.
    fn find(&self, monitor_id: &str) -> Option<Arc<ScheduledMonitor>> {
        self.monitors().find(monitor_id).cloned()
    }

    /// Runs `monitors` from now on (a reloaded config): a monitor left out is no longer
    /// scheduled, and its messages are no longer handled here; its running tasks finish.
    pub fn set_monitors(&self, monitors: MonitorSet) {
        let mut set = self.monitors.write().unwrap_or_else(|e| e.into_inner());
        *set = Arc::new(monitors);
        self.replacements
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        drop(set);
        self.monitors_changed
            .send_modify(|generation| *generation += 1);
    }

    /// How many times [`Runtime::set_monitors`] has replaced the set.
    pub fn replacements(&self) -> u64 {
        self.replacements.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Adds monitors loaded after the start to the set, unless a config reload replaced the
    /// set after [`Runtime::replacements`] returned `since` (the reload loaded its monitors
    /// itself). Monitors whose name is running already are left out. True if the set grew.
    pub fn add_monitors(&self, monitors: Vec<Arc<ScheduledMonitor>>, since: u64) -> bool {
        let mut set = self.monitors.write().unwrap_or_else(|e| e.into_inner());
        if self.replacements() != since {
            return false;
        }
        let new: Vec<_> = monitors
            .into_iter()
            .filter(|m| set.get(m.name()).is_none())
            .collect();
        if new.is_empty() {
            return false;
        }
        *set = Arc::new(MonitorSet::new(set.iter().cloned().chain(new)));
        drop(set);
        self.monitors_changed
            .send_modify(|generation| *generation += 1);
        true
    }

    /// Wakes when [`Runtime::set_monitors`] replaces the set.
    pub fn monitors_changed(&self) -> watch::Receiver<u64> {
        self.monitors_changed.subscribe()
    }

    /// Whether the monitor is switched off.
    fn is_disabled(&self, monitor: &ScheduledMonitor) -> bool {
        self.disabled
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(monitor.name())
    }

    /// Reads which monitors are switched off from the store, now and every
    /// [`DISABLED_REFRESH`]: another process may have switched one. Runs until dropped.
    async fn follow_disabled(&self) {
        let mut failing = false;
        loop {
            match self.issues.disabled_monitors().await {
                Ok(disabled) => {
                    if failing {
                        tracing::info!("which monitors are disabled is readable again");
                    }
                    failing = false;
                    self.apply_disabled(disabled);
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!("cannot read which monitors are disabled: {e:#}");
                }
                Err(_) => {}
            }
            tokio::time::sleep(DISABLED_REFRESH).await;
        }
    }

    /// Takes in which monitors are switched off, as the store says, with one info line per
    /// monitor of this process that changed: `sentinela monitors disable` (or another
    /// process) switched it, and this process now honours it.
    fn apply_disabled(&self, disabled: std::collections::HashSet<String>) {
        let mut current = self.disabled.write().unwrap_or_else(|e| e.into_inner());
        let monitors = self.monitors();
        let compiling = crate::telemetry::loading();
        for name in disabled.symmetric_difference(&current) {
            // This process's monitors: running, or joining once their plugin is compiled.
            if monitors.get(name).is_none() && !compiling.contains(name) {
                continue;
            }
            let state = if disabled.contains(name) {
                "disabled"
            } else {
                "enabled"
            };
            tracing::info!(
                monitor = name.as_str(),
                "monitor {state} (switched in the store)"
            );
        }
        *current = disabled;
    }

    /// Remembers how the monitor's last task ended, for the next flush.
    fn note_run(&self, monitor: &str, run: LastRun) {
        lock(&self.last_runs).insert(monitor.to_owned(), run);
    }

    /// Writes the runs noted since the last flush, and the call health of each monitor whose
    /// health changed. A failed write is logged and dropped: the next run of each monitor
    /// (and its next change of health) is written again.
    pub async fn flush_last_runs(&self) {
        let calls: Vec<(String, crate::telemetry::calls::CallsRecord)> = self
            .monitors()
            .iter()
            .filter_map(|m| Some((m.name().to_owned(), m.calls.take_changed()?)))
            .collect();
        if !calls.is_empty() {
            let written = warn_if_slow(
                "the issue store",
                SLOW_AFTER,
                self.issues.record_calls(&calls),
            );
            if let Err(e) = written.await {
                tracing::warn!(
                    monitors = calls.len(),
                    "cannot record how the monitors' calls went: {e:#}"
                );
            }
        }
        let runs: Vec<(String, LastRun)> = std::mem::take(&mut *lock(&self.last_runs))
            .into_iter()
            .collect();
        if runs.is_empty() {
            return;
        }
        let written = warn_if_slow(
            "the issue store",
            SLOW_AFTER,
            self.issues.record_runs(&runs),
        );
        if let Err(e) = written.await {
            tracing::warn!(
                monitors = runs.len(),
                "cannot record the monitors' last runs: {e:#}"
            );
        }
    }

    /// The issue store tasks write to.
    pub fn issues(&self) -> &Arc<IssueStore> {
        &self.issues
    }

    /// Runs until `shutdown` resolves, then stops scheduling and receiving, lets running tasks
    /// finish (within the grace period) and returns.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) -> Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let role = self.options.role;
        // Which monitors are switched off, before the first tick.
        match self.issues.disabled_monitors().await {
            Ok(disabled) => self.apply_disabled(disabled),
            Err(e) => tracing::warn!("cannot read which monitors are disabled: {e:#}"),
        }
        let follower = self.clone();
        let follow_disabled = tokio::spawn(async move { follower.follow_disabled().await });
        let scheduler =
            (role != Role::Executor).then(|| tokio::spawn(self.clone().schedule(stop_rx.clone())));
        let executor =
            (role != Role::Controller).then(|| tokio::spawn(self.clone().execute(stop_rx)));
        // Events a crash or a failed send left in the outbox: now, then every sweep.
        let issues = self.issues.clone();
        let sweeper = tokio::spawn(async move { issues.sweep_outbox().await });
        let recorder = self.clone();
        let last_runs = tokio::spawn(async move {
            loop {
                tokio::time::sleep(LAST_RUN_FLUSH).await;
                recorder.flush_last_runs().await;
            }
        });
        tracing::info!(
            role = ?role,
            monitors = self.monitors().len(),
            concurrency = self.options.concurrency,
            "sentinela running"
        );
        shutdown.await;
        tracing::info!("shutting down: no new tasks; waiting for running tasks to finish");
        let _ = stop_tx.send(true);
        if let Some(scheduler) = scheduler {
            scheduler.await?;
        }
        if let Some(executor) = executor {
            executor.await?;
        }
        sweeper.abort();
        follow_disabled.abort();
        last_runs.abort();
        // Bounded like the rest of shutdown: a hung store does not hold the exit.
        let _ = tokio::time::timeout(Duration::from_millis(500), self.flush_last_runs()).await;
        let pending = self.queue.pending();
        if pending > 0 {
            tracing::warn!(
                pending,
                "queued tasks not run before shutdown; their monitors run again at their next trigger"
            );
        }
        tracing::info!("sentinela stopped");
        Ok(())
    }
}

/// Awaits `work`, with a warning if it takes longer than `after`: a hung dependency shows in
/// the log while it hangs, not only when it gives up.
async fn warn_if_slow<T>(what: &str, after: Duration, work: impl Future<Output = T>) -> T {
    let mut work = std::pin::pin!(work);
    tokio::select! {
        done = &mut work => return done,
        _ = tokio::time::sleep(after) => {
            tracing::warn!(waited_s = after.as_secs(), "{what} has not answered for {after:?}; still waiting");
        }
    }
    work.await
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
