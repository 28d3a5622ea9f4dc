//! `sentinela run`: the scheduler turns cron triggers into `process_monitor` messages on the
//! application queue, and the executor runs each message's tasks, each call in a fresh
//! instance, at most `executor.concurrency` at a time.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::bindings::exports::sentinela::plugin::checks::MessageKind;
use crate::config::values::{ConfigDuration, Schedule};
use crate::issues::IssueStore;
use crate::message::{Message, Task};
use crate::monitor::{Call, MonitorPlugin, Reply};
use crate::queue::{ApplicationQueue, Received};

/// How long the executor waits for a message before checking for shutdown again.
const RECEIVE_WAIT: Duration = Duration::from_millis(500);

/// A monitor as the runtime sees it.
pub struct ScheduledMonitor {
    pub plugin: Arc<MonitorPlugin>,
    pub search_cron: Option<Schedule>,
    pub update_cron: Option<Schedule>,
    /// Set while a `process_monitor` message for it is queued or running, so a slow monitor
    /// is not triggered again on top of itself (Sentinela's `queued`/`running` flags).
    busy: AtomicBool,
    /// Tasks that hit the deadline in a row, and until when the monitor is not run because of
    /// them: a monitor that keeps spinning to its deadline cannot keep the executor's slots
    /// from the others.
    backoff: Mutex<Backoff>,
}

/// A monitor's deadline backoff: after the n-th deadline in a row it is not run for
/// 2^(n-1) s, at most [`MAX_BACKOFF`]; a task that ends in time resets it.
#[derive(Debug, Default)]
struct Backoff {
    strikes: u32,
    until: Option<Instant>,
    /// Triggers skipped because of it, since start.
    skipped: u64,
}

const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl ScheduledMonitor {
    pub fn new(
        plugin: Arc<MonitorPlugin>,
        search_cron: Option<Schedule>,
        update_cron: Option<Schedule>,
    ) -> Self {
        ScheduledMonitor {
            plugin,
            search_cron,
            update_cron,
            busy: AtomicBool::new(false),
            backoff: Mutex::new(Backoff::default()),
        }
    }

    fn name(&self) -> &str {
        &self.plugin.name
    }

    /// Whether the monitor is backing off now; counts the skipped trigger.
    fn backing_off(&self) -> bool {
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
    fn is_suspect(&self) -> bool {
        lock(&self.backoff).strikes > 0
    }

    /// Records how a task ended: a deadline extends the backoff, anything else resets it.
    fn record_outcome(&self, hit_deadline: bool) {
        let mut backoff = lock(&self.backoff);
        if !hit_deadline {
            backoff.strikes = 0;
            backoff.until = None;
            return;
        }
        backoff.strikes = backoff.strikes.saturating_add(1);
        let pause =
            Duration::from_secs(1u64 << backoff.strikes.saturating_sub(1).min(16)).min(MAX_BACKOFF);
        backoff.until = Some(Instant::now() + pause);
        tracing::warn!(
            monitor = self.name(),
            deadlines_in_a_row = backoff.strikes,
            backoff_s = pause.as_secs(),
            skipped_so_far = backoff.skipped,
            "monitor hit its deadline; not running it for {}s so it cannot hold the executor's slots",
            pause.as_secs()
        );
    }
}

/// What this process does: schedule (controller), execute (executor), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    All,
    Controller,
    Executor,
}

#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub role: Role,
    /// Tasks executed at once.
    pub concurrency: usize,
    /// How often a message in process has its visibility extended (`queue_visibility_time`).
    pub heartbeat: Duration,
    /// How long running tasks may take to finish after SIGTERM before their messages are
    /// released back to the queue.
    pub shutdown_grace: Duration,
}

pub struct Runtime {
    monitors: HashMap<String, Arc<ScheduledMonitor>>,
    queue: Arc<ApplicationQueue>,
    issues: Arc<IssueStore>,
    options: RuntimeOptions,
    /// Slots monitors whose last task hit its deadline may hold together: one fewer than
    /// `executor.concurrency` (when there are two or more), so at least one slot is always
    /// left to monitors that end in time.
    suspect_slots: Arc<Semaphore>,
}

impl Runtime {
    pub fn new(
        monitors: Vec<ScheduledMonitor>,
        queue: ApplicationQueue,
        issues: IssueStore,
        options: RuntimeOptions,
    ) -> Runtime {
        Runtime {
            monitors: monitors
                .into_iter()
                .map(|m| (m.name().to_owned(), Arc::new(m)))
                .collect(),
            queue: Arc::new(queue),
            issues: Arc::new(issues),
            suspect_slots: Arc::new(Semaphore::new(options.concurrency.saturating_sub(1).max(1))),
            options,
        }
    }

    pub fn issues(&self) -> &Arc<IssueStore> {
        &self.issues
    }

    /// Runs until `shutdown` resolves, then stops scheduling and receiving, lets running tasks
    /// finish (within the grace period) and returns.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) -> Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let role = self.options.role;
        let scheduler =
            (role != Role::Executor).then(|| tokio::spawn(self.clone().schedule(stop_rx.clone())));
        let executor =
            (role != Role::Controller).then(|| tokio::spawn(self.clone().execute(stop_rx)));
        tracing::info!(
            role = ?role,
            monitors = self.monitors.len(),
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

    async fn schedule(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut next: HashMap<(&str, Task), DateTime<Utc>> = HashMap::new();
        let now = Utc::now();
        for monitor in self.monitors.values() {
            for (task, cron) in [
                (Task::Search, &monitor.search_cron),
                (Task::Update, &monitor.update_cron),
            ] {
                if let Some(at) = cron.as_ref().and_then(|c| c.next_after(now)) {
                    next.insert((monitor.name(), task), at);
                }
            }
        }
        loop {
            let Some(&wake) = next.values().min() else {
                let _ = stop.changed().await;
                return;
            };
            let sleep = (wake - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(sleep) => {}
            }
            let now = Utc::now();
            let mut due: HashMap<&str, Vec<Task>> = HashMap::new();
            for (&(name, task), at) in next.iter_mut() {
                if *at <= now {
                    due.entry(name).or_default().push(task);
                    let monitor = &self.monitors[name];
                    let cron = if task == Task::Search {
                        &monitor.search_cron
                    } else {
                        &monitor.update_cron
                    };
                    *at = cron
                        .as_ref()
                        .and_then(|c| c.next_after(now))
                        .unwrap_or(DateTime::<Utc>::MAX_UTC);
                }
            }
            for (name, mut tasks) in due {
                tasks.sort_by_key(|t| *t == Task::Update);
                self.trigger(&self.monitors[name], tasks).await;
            }
        }
    }

    /// Enqueues a `process_monitor` message. With the in-process queue, a monitor that is
    /// still queued or running is not triggered again; a shared queue's consumers are other
    /// processes, so there each executor skips a monitor it is already running.
    async fn trigger(&self, monitor: &ScheduledMonitor, tasks: Vec<Task>) {
        let gate = !self.queue.is_shared();
        if gate && monitor.backing_off() {
            return;
        }
        if gate && monitor.busy.swap(true, Ordering::AcqRel) {
            tracing::debug!(
                monitor = monitor.name(),
                "still queued or running; trigger skipped"
            );
            return;
        }
        let body = Message::process_monitor(monitor.name(), tasks).to_json();
        match self.queue.send(body).await {
            Ok(message_id) => {
                tracing::debug!(
                    monitor = monitor.name(),
                    message_id = message_id.as_deref().unwrap_or(""),
                    "queued monitor tasks"
                )
            }
            Err(e) => {
                if gate {
                    monitor.busy.store(false, Ordering::Release);
                }
                tracing::error!(
                    monitor = monitor.name(),
                    "cannot queue monitor tasks: {e:#}"
                );
            }
        }
    }

    async fn execute(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.options.concurrency));
        let mut running = JoinSet::new();
        let in_flight: Arc<Mutex<HashMap<u64, Received>>> = Arc::default();
        let mut next_id = 0u64;
        let mut failures = 0u32;
        loop {
            // Hold free slots before receiving, so no message waits in this process while
            // another executor could take it: wait for one, then take every other free one
            // (up to a receive's maximum of 10) and ask for that many messages at once.
            let first = tokio::select! {
                _ = stop.changed() => break,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break, // never closed
                },
            };
            let mut free = vec![first];
            while free.len() < 10
                && let Ok(slot) = slots.clone().try_acquire_owned()
            {
                free.push(slot);
            }
            let received = tokio::select! {
                _ = stop.changed() => break,
                received = self.queue.receive(RECEIVE_WAIT, free.len()) => received,
            };
            while running.try_join_next().is_some() {}
            match received {
                Ok(messages) => {
                    if failures > 0 {
                        tracing::info!(failures, "application queue reachable again");
                        failures = 0;
                    }
                    // Each message takes one slot; the slots left over are freed here.
                    for (message, slot) in messages.into_iter().zip(free) {
                        next_id += 1;
                        let id = next_id;
                        lock(&in_flight).insert(id, message.clone());
                        let (runtime, in_flight) = (self.clone(), in_flight.clone());
                        running.spawn(async move {
                            runtime.process(message).await;
                            lock(&in_flight).remove(&id);
                            drop(slot);
                        });
                    }
                }
                Err(e) => {
                    let wait = receive_backoff(failures);
                    failures += 1;
                    tracing::error!(
                        failures,
                        retry_in_ms = wait.as_millis() as u64,
                        "receiving from the application queue failed: {e:#}"
                    );
                    tokio::select! {
                        _ = stop.changed() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        let grace = self.options.shutdown_grace;
        let drained = tokio::time::timeout(grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            running.abort_all();
            while running.join_next().await.is_some() {}
            let unfinished: Vec<Received> = lock(&in_flight).drain().map(|(_, m)| m).collect();
            tracing::warn!(
                count = unfinished.len(),
                "tasks still running after the {grace:?} grace period; releasing their messages"
            );
            for message in unfinished {
                if let Err(e) = self.queue.release(&message).await {
                    tracing::error!("cannot release a message at shutdown: {e:#}");
                }
            }
        }
    }

    /// Handles one message: keeps it hidden while it runs, deletes it after. A message that
    /// cannot be parsed, or keeps coming back, is taken out of circulation.
    async fn process(&self, received: Received) {
        let max = self.queue.max_receive_count();
        let outcome = if received.receive_count > max {
            Err(format!(
                "received {} times (max_receive_count {max}) without being processed",
                received.receive_count
            ))
        } else {
            Message::parse(&received.body)
        };
        let message = match outcome {
            Ok(message) => message,
            Err(problem) => {
                if let Err(e) = self.queue.dead_letter(&received, &problem).await {
                    tracing::error!("cannot take a bad message out of the queue: {e:#}");
                }
                return;
            }
        };
        let heartbeat = async {
            let mut ticks = tokio::time::interval(self.options.heartbeat);
            ticks.tick().await; // the receive itself hid the message
            loop {
                ticks.tick().await;
                if let Err(e) = self.queue.extend(&received).await {
                    tracing::warn!("cannot extend a message's visibility: {e:#}");
                }
            }
        };
        let message_id = received.message_id.as_deref().unwrap_or("");
        tracing::debug!(
            message_id,
            receive_count = received.receive_count,
            "processing message"
        );
        tokio::select! {
            _ = heartbeat => {}
            _ = self.dispatch(message) => {}
        }
        match self.queue.delete(&received).await {
            Ok(()) => tracing::debug!(message_id, "message processed"),
            Err(e) => tracing::error!(message_id, "cannot delete a processed message: {e:#}"),
        }
    }

    async fn dispatch(&self, message: Message) {
        let monitor_id = match &message {
            Message::ProcessMonitor { monitor_id, .. }
            | Message::Event { monitor_id, .. }
            | Message::Request { monitor_id, .. } => monitor_id,
        };
        let Some(monitor) = self.monitors.get(monitor_id) else {
            tracing::error!(
                monitor = crate::guest_text::shortened(monitor_id, 64).as_str(),
                "dropping message for an unknown monitor"
            );
            return;
        };
        match message {
            Message::ProcessMonitor { tasks, .. } => {
                if self.queue.is_shared() && monitor.backing_off() {
                    return;
                }
                if self.queue.is_shared() && monitor.busy.swap(true, Ordering::AcqRel) {
                    tracing::info!(
                        monitor = monitor.name(),
                        "already running in this process; message skipped"
                    );
                    return;
                }
                self.run_tasks_fairly(monitor, &tasks).await;
                monitor.busy.store(false, Ordering::Release);
            }
            Message::Request {
                action, payload, ..
            } if action == "monitor_refresh" => {
                let tasks = payload
                    .pointer("/params/tasks")
                    .and_then(|t| serde_json::from_value::<Vec<Task>>(t.clone()).ok())
                    .unwrap_or_else(|| vec![Task::Search, Task::Update]);
                if monitor.busy.swap(true, Ordering::AcqRel) {
                    tracing::info!(
                        monitor = monitor.name(),
                        "refresh skipped: the monitor is queued or running"
                    );
                    return;
                }
                self.run_tasks(monitor, &tasks).await;
                monitor.busy.store(false, Ordering::Release);
            }
            Message::Request { payload, .. } => {
                self.handle(monitor, MessageKind::Request, payload).await
            }
            Message::Event { payload, .. } => {
                self.handle(monitor, MessageKind::Event, payload).await
            }
        }
    }

    async fn handle(
        &self,
        monitor: &ScheduledMonitor,
        kind: MessageKind,
        payload: serde_json::Value,
    ) {
        if let Err(e) = monitor
            .plugin
            .call(Call::Handle(kind, payload.to_string()))
            .await
        {
            tracing::error!(monitor = monitor.name(), "{e}");
        }
    }

    /// Runs the tasks, unless the monitor's last task hit its deadline and the slots such
    /// monitors may share are all taken: then this trigger is skipped (and counted).
    async fn run_tasks_fairly(&self, monitor: &ScheduledMonitor, tasks: &[Task]) {
        let _permit = if monitor.is_suspect() {
            match self.suspect_slots.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    let mut backoff = lock(&monitor.backoff);
                    backoff.skipped += 1;
                    tracing::debug!(
                        monitor = monitor.name(),
                        skipped = backoff.skipped,
                        "other monitors that hit their deadline hold the slots they may share; trigger skipped"
                    );
                    return;
                }
            }
        } else {
            None
        };
        self.run_tasks(monitor, tasks).await;
    }

    pub async fn run_tasks(&self, monitor: &ScheduledMonitor, tasks: &[Task]) {
        // One verdict per message: a search that hit its deadline is not forgiven by an
        // update that had nothing to do.
        let mut hit_deadline = false;
        for task in tasks {
            let started = Instant::now();
            let outcome = match task {
                Task::Search => self.search(&monitor.plugin).await,
                Task::Update => self.update(&monitor.plugin).await,
            };
            let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
            hit_deadline |= matches!(
                &outcome,
                Err(TaskError::Call(e)) if matches!(e.kind, crate::monitor::CallErrorKind::Deadline(_))
            );
            match outcome {
                Ok(()) => {
                    tracing::info!(monitor = monitor.name(), task = ?task, elapsed_ms, "task finished")
                }
                Err(e) => {
                    tracing::error!(monitor = monitor.name(), task = ?task, elapsed_ms, "task failed: {e}")
                }
            }
        }
        monitor.record_outcome(hit_deadline);
    }

    async fn search(&self, plugin: &MonitorPlugin) -> Result<(), TaskError> {
        if let Reply::Issues(found) = plugin.call(Call::Search).await? {
            let limits = &plugin.limits;
            crate::issues::check_issue_count(
                &plugin.name,
                "search",
                found.len(),
                limits.issues_per_call,
            )
            .map_err(TaskError::Limit)?;
            // A count settles the usual case; the ids are read only when the result might open
            // too many.
            let limit = limits.active_issues as usize;
            if !found.is_empty()
                && self
                    .issues
                    .active_count(&plugin.name)
                    .await
                    .map_err(TaskError::Store)?
                    + found.len()
                    > limit
            {
                let active = self
                    .issues
                    .active_ids(&plugin.name)
                    .await
                    .map_err(TaskError::Store)?;
                let opened = found.iter().filter(|i| !active.contains(&i.id)).count();
                if active.len() + opened > limit {
                    return Err(TaskError::Limit(format!(
                        "monitor '{}': search would open {opened} issues beside its {} active \
                         ones, over its limit of {limit} (limits.active_issues); the whole \
                         result was refused",
                        plugin.name,
                        active.len(),
                    )));
                }
            }
            self.issues
                .record_found(&plugin.name, found)
                .await
                .map_err(TaskError::Store)?;
        }
        Ok(())
    }

    /// `update` with the active issues, then `is-solved` for each of them.
    async fn update(&self, plugin: &MonitorPlugin) -> Result<(), TaskError> {
        let active = self
            .issues
            .active(&plugin.name)
            .await
            .map_err(TaskError::Store)?;
        if active.is_empty() {
            return Ok(());
        }
        if let Reply::Issues(updated) = plugin.call(Call::Update(active)).await? {
            crate::issues::check_issue_count(
                &plugin.name,
                "update",
                updated.len(),
                plugin.limits.issues_per_call,
            )
            .map_err(TaskError::Limit)?;
            self.issues
                .record_updated(&plugin.name, updated)
                .await
                .map_err(TaskError::Store)?;
        }
        let active = self
            .issues
            .active(&plugin.name)
            .await
            .map_err(TaskError::Store)?;
        for issue in active {
            let id = issue.id.clone();
            match plugin.call(Call::IsSolved(issue)).await {
                Ok(Reply::Solved(true)) => {
                    self.issues
                        .solve(&plugin.name, &id)
                        .await
                        .map_err(TaskError::Store)?;
                }
                Ok(_) => {}
                Err(e) => tracing::error!(monitor = %plugin.name, issue_id = id.as_str(), "{e}"),
            }
        }
        Ok(())
    }
}

/// Why a task failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Call(#[from] crate::monitor::CallError),
    /// A per-monitor limit refused the call's result.
    #[error("{0}")]
    Limit(String),
    #[error("issue store: {0:#}")]
    Store(anyhow::Error),
}

/// How long the executor waits before polling again after a failed receive: doubling from
/// 0.5 s to 10 s, so an outage is neither hammered nor waited out for long.
fn receive_backoff(failures: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << failures.min(5))).min(Duration::from_secs(10))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many monitor tasks run at once in this process.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    #[serde(default = "ExecutorConfig::default_concurrency")]
    pub concurrency: Concurrency,
    /// After SIGTERM, how long running tasks may take to finish before their messages are
    /// released back to the queue.
    #[serde(default = "ExecutorConfig::default_shutdown_grace")]
    pub shutdown_grace: ConfigDuration,
}

impl ExecutorConfig {
    /// Sentinela's `executor_concurrency` default.
    pub const DEFAULT_CONCURRENCY: usize = 5;
    fn default_concurrency() -> Concurrency {
        Concurrency(Self::DEFAULT_CONCURRENCY)
    }
    fn default_shutdown_grace() -> ConfigDuration {
        ConfigDuration(Duration::from_secs(30))
    }
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            concurrency: Self::default_concurrency(),
            shutdown_grace: Self::default_shutdown_grace(),
        }
    }
}

/// A task count between 1 and [`Concurrency::MAX`].
#[derive(Debug, Clone, Copy)]
pub struct Concurrency(pub usize);

impl Concurrency {
    pub const MAX: usize = 256;
}

impl<'de> Deserialize<'de> for Concurrency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = usize::deserialize(deserializer)?;
        if n == 0 || n > Self::MAX {
            return Err(de::Error::custom(format!(
                "concurrency must be between 1 and {}, got {n}",
                Self::MAX
            )));
        }
        Ok(Concurrency(n))
    }
}
