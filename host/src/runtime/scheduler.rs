//! The scheduler: cron triggers become `process_monitor` messages on the application queue.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::message::{Message, Task};

use super::{Runtime, ScheduledMonitor};

impl Runtime {
    pub(super) async fn schedule(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
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
        if gate && !monitor.claim() {
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
                    monitor.release();
                }
                tracing::error!(
                    monitor = monitor.name(),
                    "cannot queue monitor tasks: {e:#}"
                );
            }
        }
    }
}
