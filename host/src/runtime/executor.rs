//! The executor: receives messages from the application queue, keeps each hidden while it
//! runs, dispatches it to its monitor and deletes it after.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde::de::{self, Deserializer};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::audit::{self, MessageOrigin};
use crate::bindings::exports::sentinela::plugin::checks::MessageKind;
use crate::config::values::ConfigDuration;
use crate::message::{Message, Work};
use crate::monitor::Call;
use crate::queue::Received;

use super::{Runtime, SLOW_AFTER, ScheduledMonitor, lock, warn_if_slow};
use crate::telemetry::calls::Export;
use crate::telemetry::{self, METRICS};

/// How long the executor waits for a message before checking for shutdown again.
const RECEIVE_WAIT: Duration = Duration::from_millis(500);
/// How often a lasting application-queue outage is said again (every failed receive is
/// counted in `sentinela_application_queue_total`).
const OUTAGE_REPEAT: Duration = Duration::from_secs(60);
/// How long releasing the unfinished messages may take at shutdown, after the grace period.
const RELEASE_DEADLINE: Duration = Duration::from_millis(500);

impl Runtime {
    pub(super) async fn execute(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.options.concurrency));
        let mut running = JoinSet::new();
        let in_flight: Arc<Mutex<HashMap<u64, Received>>> = Arc::default();
        let mut next_id = 0u64;
        let mut failures = 0u32;
        // An outage is said when it starts, then once a minute at most, and when it ends.
        let mut outage_said: Option<std::time::Instant> = None;
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
                received = warn_if_slow(
                    "the application queue's receive",
                    self.queue.receive_wait(RECEIVE_WAIT) + SLOW_AFTER,
                    self.queue.receive(RECEIVE_WAIT, free.len()),
                ) => received,
            };
            while running.try_join_next().is_some() {}
            METRICS.application_queue("receive", received.is_ok());
            telemetry::queue_reachable(received.is_ok());
            match received {
                Ok(messages) => {
                    if failures > 0 {
                        tracing::info!(failures, "application queue reachable again");
                        failures = 0;
                        outage_said = None;
                    }
                    // Each message takes one slot; the slots left over are freed here.
                    for (message, slot) in messages.into_iter().zip(free) {
                        next_id += 1;
                        let id = next_id;
                        lock(&in_flight).insert(id, message.clone());
                        METRICS.messages_in_flight.inc();
                        let (runtime, in_flight) = (self.clone(), in_flight.clone());
                        running.spawn(async move {
                            runtime.process(message).await;
                            lock(&in_flight).remove(&id);
                            METRICS.messages_in_flight.dec();
                            drop(slot);
                        });
                    }
                }
                Err(e) => {
                    let wait = receive_backoff(failures);
                    failures += 1;
                    if outage_said.is_none_or(|at| at.elapsed() >= OUTAGE_REPEAT) {
                        outage_said = Some(std::time::Instant::now());
                        tracing::error!(
                            failures,
                            retry_in_ms = wait.as_millis() as u64,
                            "receiving from the application queue failed ({failures} in a row; \
                             said again once a minute while it lasts): {e:#}"
                        );
                    }
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
            // Together and bounded: a hung queue cannot hold the exit. A message not
            // released comes back when its visibility timeout ends.
            let mut releases = JoinSet::new();
            for message in unfinished {
                let queue = self.queue.clone();
                releases.spawn(async move { queue.release(&message).await });
            }
            let released = tokio::time::timeout(RELEASE_DEADLINE, async {
                while let Some(outcome) = releases.join_next().await {
                    if let Ok(Err(e)) = outcome {
                        tracing::error!("cannot release a message at shutdown: {e:#}");
                    }
                }
            })
            .await;
            match released {
                Ok(()) => {}
                Err(_) => tracing::error!(
                    "the application queue did not answer within {RELEASE_DEADLINE:?} at \
                     shutdown; unreleased messages come back when their visibility ends"
                ),
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
            Message::parse(&received.body).map_err(|invalid| invalid.to_string())
        };
        let message = match outcome {
            Ok(message) => message,
            Err(problem) => {
                let moved = self.queue.dead_letter(&received, &problem).await;
                METRICS.application_queue("dead_letter", moved.is_ok());
                if let Err(e) = moved {
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
        let monitor_id = message.monitor_id().to_owned();
        let origin = MessageOrigin {
            message_id: received.message_id.as_deref(),
            sender_id: received.sender_id.as_deref(),
            sent_at: received.sent_at,
        };
        let known = tokio::select! {
            _ = heartbeat => true,
            known = self.dispatch(message, received.triggered_at, &origin) => known,
        };
        if !known {
            let monitor = crate::guest_text::shortened(&monitor_id, 64);
            if self.queue.is_shared() {
                // Its plugin is still compiling here (a start that waits on no compile): left
                // on the queue, it comes back after its visibility timeout, to this process
                // once the monitor has joined or to another one.
                if crate::telemetry::loading().contains(&monitor_id) {
                    tracing::info!(
                        monitor = monitor.as_str(),
                        message_id,
                        receive_count = received.receive_count,
                        "the monitor's plugin is still compiling in this process; message left \
                         on the queue"
                    );
                    return;
                }
                // Perhaps for an executor of a newer config (a rolling deploy): left on the
                // queue, it goes to one that knows the monitor, or to the dead-letter queue
                // after `max_receive_count` deliveries.
                tracing::warn!(
                    monitor = monitor.as_str(),
                    message_id,
                    receive_count = received.receive_count,
                    max_receive_count = self.queue.max_receive_count(),
                    "no monitor of that name in this process; message left on the queue"
                );
                return;
            }
            tracing::error!(
                monitor = monitor.as_str(),
                "dropping message for an unknown monitor"
            );
        }
        match warn_if_slow(
            "the application queue's delete",
            SLOW_AFTER,
            self.queue.delete(&received),
        )
        .await
        {
            Ok(()) => {
                METRICS.application_queue("delete", true);
                tracing::debug!(message_id, "message processed")
            }
            Err(e) => {
                METRICS.application_queue("delete", false);
                tracing::error!(message_id, "cannot delete a processed message: {e:#}")
            }
        }
    }

    /// Does what the message asks of its monitor ([`Message::into_work`]); false when this
    /// process has no monitor of that name. `triggered_at`: when the scheduler's trigger was
    /// due, for the schedule lag.
    async fn dispatch(
        &self,
        message: Message,
        triggered_at: Option<SystemTime>,
        origin: &MessageOrigin<'_>,
    ) -> bool {
        let monitor_id = message.monitor_id().to_owned();
        let work = message.into_work();
        if let Work::DropIssue(key) = work {
            let subject = format!("issue {key}");
            let outcome = match self.issues.drop_issue(key).await {
                Ok(Some((monitor, id))) => {
                    tracing::info!(
                        monitor = monitor.as_str(),
                        issue_id = crate::guest_text::shortened(&id, 64).as_str(),
                        issue_key = key,
                        "issue dropped"
                    );
                    "ok"
                }
                Ok(None) => {
                    tracing::info!(issue_key = key, "issue_drop: no active issue has that key");
                    "not_found"
                }
                Err(e) => {
                    tracing::error!(issue_key = key, "issue_drop failed: {e:#}");
                    "error"
                }
            };
            audit::control_action("issue_drop", &subject, origin, outcome);
            return true;
        }
        if let Work::Ignore(action) = &work {
            tracing::info!(
                action = action.as_str(),
                "an action about something this host has no concept of; message dropped"
            );
            return true;
        }
        let Some(monitor) = self.find(&monitor_id) else {
            return false;
        };
        let monitor = &*monitor;
        if let Work::SetEnabled(enabled) = work {
            let ok = self.set_enabled(monitor, enabled).await;
            let action = if enabled {
                "monitor_enable"
            } else {
                "monitor_disable"
            };
            let outcome = if ok { "ok" } else { "error" };
            audit::control_action(action, monitor.name(), origin, outcome);
            return true;
        }
        if self.is_disabled(monitor) {
            tracing::info!(
                monitor = monitor.name(),
                "the monitor is disabled; message dropped"
            );
            return true;
        }
        match work {
            Work::Tasks(tasks) => {
                if self.queue.is_shared() && monitor.backing_off() {
                    return true;
                }
                if self.queue.is_shared() && !monitor.claim() {
                    tracing::info!(
                        monitor = monitor.name(),
                        "already running in this process; message skipped"
                    );
                    return true;
                }
                self.run_tasks_fairly(monitor, &tasks, triggered_at).await;
                monitor.release();
            }
            Work::Refresh(tasks) => {
                if !monitor.claim() {
                    tracing::info!(
                        monitor = monitor.name(),
                        "refresh skipped: the monitor is queued or running"
                    );
                    audit::control_action("monitor_refresh", monitor.name(), origin, "skipped");
                    return true;
                }
                audit::control_action("monitor_refresh", monitor.name(), origin, "ok");
                self.run_tasks(monitor, &tasks, None).await;
                monitor.release();
            }
            Work::Handle(kind, payload) => self.handle(monitor, kind, payload).await,
            Work::SetEnabled(_) | Work::DropIssue(_) | Work::Ignore(_) => {}
        }
        true
    }

    /// `monitor_disable` / `monitor_enable`: kept in the store, so every process sharing it
    /// (and a restart) honours it. False when the store could not be written.
    async fn set_enabled(&self, monitor: &ScheduledMonitor, enabled: bool) -> bool {
        let name = monitor.name();
        match self.issues.set_enabled(name, enabled).await {
            Ok(()) => {
                let mut disabled = self.disabled.write().unwrap_or_else(|e| e.into_inner());
                if enabled {
                    disabled.remove(name);
                } else {
                    disabled.insert(name.to_owned());
                }
                drop(disabled);
                let state = if enabled { "enabled" } else { "disabled" };
                tracing::info!(monitor = name, "monitor {state}");
                true
            }
            Err(e) => {
                tracing::error!(
                    monitor = name,
                    "cannot switch the monitor {}: {e:#}",
                    if enabled { "on" } else { "off" }
                );
                false
            }
        }
    }

    async fn handle(
        &self,
        monitor: &ScheduledMonitor,
        kind: MessageKind,
        payload: serde_json::Value,
    ) {
        let span = tracing::info_span!("message", monitor = monitor.name(), kind = ?kind);
        async {
            let handled = monitor
                .plugin()
                .call(Call::Handle(kind, payload.to_string()))
                .await;
            if let Err(e) = super::tasks::counted(monitor, Export::Handle, handled, |_| Ok(())) {
                tracing::error!("{e}");
            }
        }
        .instrument(span)
        .await
    }
}

/// How long the executor waits before polling again after a failed receive: doubling from
/// 0.5 s to 10 s, so an outage is neither hammered nor waited out for long.
fn receive_backoff(failures: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << failures.min(5))).min(Duration::from_secs(10))
}

/// How many monitor tasks run at once in this process.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    /// `executor.concurrency`: tasks run at once (default 5, as Sentinela's).
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
    /// The largest `executor.concurrency` accepted.
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
