//! `sentinela run`: the scheduler turns cron triggers into `process_monitor` messages on the
//! application queue, and the executor runs each message's tasks, each call in a fresh
//! instance, at most `executor.concurrency` at a time.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::bindings::exports::sentinela::plugin::checks::MessageKind;
use crate::config::Schedule;
use crate::issues::IssueStore;
use crate::message::{Message, Task};
use crate::plugin::{Call, MonitorPlugin, Reply};
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
}

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
        }
    }

    fn name(&self) -> &str {
        &self.plugin.name
    }
}

pub struct Runtime {
    monitors: HashMap<String, Arc<ScheduledMonitor>>,
    queue: Arc<ApplicationQueue>,
    issues: Arc<IssueStore>,
    concurrency: usize,
}

impl Runtime {
    pub fn new(
        monitors: Vec<ScheduledMonitor>,
        queue: ApplicationQueue,
        concurrency: usize,
    ) -> Runtime {
        Runtime {
            monitors: monitors
                .into_iter()
                .map(|m| (m.name().to_owned(), Arc::new(m)))
                .collect(),
            queue: Arc::new(queue),
            issues: Arc::new(IssueStore::new()),
            concurrency,
        }
    }

    pub fn issues(&self) -> &Arc<IssueStore> {
        &self.issues
    }

    /// Runs until `shutdown` resolves, then stops scheduling, lets running tasks finish and
    /// returns.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) -> Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let scheduler = tokio::spawn(self.clone().schedule(stop_rx.clone()));
        let executor = tokio::spawn(self.clone().execute(stop_rx));
        tracing::info!(
            monitors = self.monitors.len(),
            concurrency = self.concurrency,
            "sentinela running"
        );
        shutdown.await;
        tracing::info!("shutting down: no new tasks; waiting for running tasks to finish");
        let _ = stop_tx.send(true);
        scheduler.await?;
        executor.await?;
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

    /// Enqueues a `process_monitor` message unless the monitor is already queued or running.
    async fn trigger(&self, monitor: &ScheduledMonitor, tasks: Vec<Task>) {
        if monitor.busy.swap(true, Ordering::AcqRel) {
            tracing::debug!(
                monitor = monitor.name(),
                "still queued or running; trigger skipped"
            );
            return;
        }
        let body = Message::process_monitor(monitor.name(), tasks).to_json();
        if let Err(e) = self.queue.send(body).await {
            monitor.busy.store(false, Ordering::Release);
            tracing::error!(
                monitor = monitor.name(),
                "cannot queue monitor tasks: {e:#}"
            );
        }
    }

    async fn execute(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let mut running = JoinSet::new();
        loop {
            // Hold a free slot before receiving, so no message waits in this process while
            // another executor could take it.
            let slot = tokio::select! {
                _ = stop.changed() => break,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break, // never closed
                },
            };
            let received = tokio::select! {
                _ = stop.changed() => break,
                received = self.queue.receive(RECEIVE_WAIT) => received,
            };
            while running.try_join_next().is_some() {}
            match received {
                Ok(Some(message)) => {
                    let runtime = self.clone();
                    running.spawn(async move {
                        runtime.process(message).await;
                        drop(slot);
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!("receiving from the application queue failed: {e:#}");
                    tokio::time::sleep(RECEIVE_WAIT).await;
                }
            }
        }
        while running.join_next().await.is_some() {}
    }

    /// Handles one message and acknowledges it. A malformed message or an unknown monitor is
    /// logged and dropped: retrying it cannot succeed.
    async fn process(&self, received: Received) {
        match Message::parse(&received.body) {
            Ok(message) => self.dispatch(message).await,
            Err(problem) => {
                let shown: String = received.body.chars().take(200).collect();
                tracing::error!("dropping application queue message: {problem}; body: {shown}");
            }
        }
        if let Err(e) = self.queue.delete(&received).await {
            tracing::error!("cannot delete processed message: {e:#}");
        }
    }

    async fn dispatch(&self, message: Message) {
        let monitor_id = match &message {
            Message::ProcessMonitor { monitor_id, .. }
            | Message::Event { monitor_id, .. }
            | Message::Request { monitor_id, .. } => monitor_id,
        };
        let Some(monitor) = self.monitors.get(monitor_id) else {
            tracing::error!(monitor = %monitor_id, "dropping message for an unknown monitor");
            return;
        };
        match message {
            Message::ProcessMonitor { tasks, .. } => {
                self.run_tasks(monitor, &tasks).await;
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

    pub async fn run_tasks(&self, monitor: &ScheduledMonitor, tasks: &[Task]) {
        for task in tasks {
            let started = Instant::now();
            let outcome = match task {
                Task::Search => self.search(&monitor.plugin).await,
                Task::Update => self.update(&monitor.plugin).await,
            };
            let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
            match outcome {
                Ok(()) => {
                    tracing::info!(monitor = monitor.name(), task = ?task, elapsed_ms, "task finished")
                }
                Err(e) => {
                    tracing::error!(monitor = monitor.name(), task = ?task, elapsed_ms, "task failed: {e}")
                }
            }
        }
    }

    async fn search(&self, plugin: &MonitorPlugin) -> Result<(), crate::plugin::CallError> {
        if let Reply::Issues(found) = plugin.call(Call::Search).await? {
            self.issues.record_found(&plugin.name, found);
        }
        Ok(())
    }

    /// `update` with the active issues, then `is-solved` for each of them.
    async fn update(&self, plugin: &MonitorPlugin) -> Result<(), crate::plugin::CallError> {
        let active = self.issues.active(&plugin.name);
        if active.is_empty() {
            return Ok(());
        }
        if let Reply::Issues(updated) = plugin.call(Call::Update(active)).await? {
            self.issues.record_updated(&plugin.name, updated);
        }
        for issue in self.issues.active(&plugin.name) {
            let id = issue.id.clone();
            match plugin.call(Call::IsSolved(issue)).await {
                Ok(Reply::Solved(true)) => {
                    self.issues.solve(&plugin.name, &id);
                }
                Ok(_) => {}
                Err(e) => tracing::error!(monitor = %plugin.name, issue_id = %id, "{e}"),
            }
        }
        Ok(())
    }
}
