//! The application queue: how `process_monitor`, `event` and `request` messages travel from
//! whoever schedules to whoever executes.
//!
//! The set of queue types is closed (each is provided by a host plugin compiled into the
//! host), so it is an enum rather than a trait object.

mod internal;
mod sqs;

use std::time::{Duration, SystemTime};

use anyhow::Result;
pub use internal::InternalQueue;
use serde::Deserialize;
use serde::de::{self, Deserializer};

pub use sqs::SqsQueue;

/// The application queue this process sends to and receives from (`application_queue:`).
pub enum ApplicationQueue {
    /// `type: internal`: in process; only this process receives what it sends.
    Internal(InternalQueue),
    /// `type: plugin.aws.sqs`: an SQS queue shared with other processes.
    Sqs(SqsQueue),
}

/// A message taken from the queue, to be deleted once processed.
#[derive(Debug, Clone)]
pub struct Received {
    /// The message as sent, read with [`crate::message::Message::parse`].
    pub body: String,
    /// SQS's message id (the same for every delivery); `None` for the internal queue.
    pub message_id: Option<String>,
    /// SQS's handle for this delivery; `None` for the internal queue.
    pub receipt_handle: Option<String>,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
    /// When the scheduler's trigger was due, for a `process_monitor` message it sent (the
    /// schedule lag is measured from it).
    pub triggered_at: Option<SystemTime>,
    /// Who sent it, as SQS says (`SenderId`: the IAM user or role id); `None` for the
    /// internal queue, whose only sender is this process.
    pub sender_id: Option<String>,
    /// When SQS received it (`SentTimestamp`).
    pub sent_at: Option<SystemTime>,
}

impl ApplicationQueue {
    /// Opens the configured queue. An SQS queue connects with the `APPLICATION` credential and
    /// checks that the queue exists, creating it when `create_queue` is set.
    pub async fn from_config(config: &ApplicationQueueConfig) -> Result<ApplicationQueue> {
        Ok(match config.kind {
            QueueKind::Internal => ApplicationQueue::Internal(InternalQueue::new()),
            QueueKind::Sqs => ApplicationQueue::Sqs(SqsQueue::connect_from_env(config).await?),
        })
    }

    /// Whether other processes may consume what this one sends.
    pub fn is_shared(&self) -> bool {
        matches!(self, ApplicationQueue::Sqs(_))
    }

    /// Sends a message, with the time its trigger was due when the scheduler sends it;
    /// returns its id where the queue assigns one.
    pub async fn send(
        &self,
        body: String,
        triggered_at: Option<SystemTime>,
    ) -> Result<Option<String>> {
        match self {
            ApplicationQueue::Internal(q) => q.send(body, triggered_at).map(|()| None),
            ApplicationQueue::Sqs(q) => q.send(body, triggered_at).await,
        }
    }

    /// Waits for up to `max` messages (up to `wait` for the internal queue, the configured
    /// long-poll wait for SQS). The internal queue hands out one at a time.
    pub async fn receive(&self, wait: Duration, max: usize) -> Result<Vec<Received>> {
        match self {
            ApplicationQueue::Internal(q) => Ok(q.receive(wait).await.into_iter().collect()),
            ApplicationQueue::Sqs(q) => q.receive(max.min(10) as i32).await,
        }
    }

    /// How long a receive may wait for messages before it returns empty: `internal` for the
    /// in-process queue, `queue_wait_message_time` for SQS.
    pub fn receive_wait(&self, internal: Duration) -> Duration {
        match self {
            ApplicationQueue::Internal(_) => internal,
            ApplicationQueue::Sqs(q) => Duration::from_secs(q.wait_seconds.max(0) as u64),
        }
    }

    /// Keeps a message in process hidden from other consumers.
    pub async fn extend(&self, message: &Received) -> Result<()> {
        match self {
            ApplicationQueue::Internal(_) => Ok(()),
            ApplicationQueue::Sqs(q) => q.extend(message).await,
        }
    }

    /// Acknowledges a processed message. The internal queue hands each message out once, so
    /// there is nothing to delete.
    pub async fn delete(&self, message: &Received) -> Result<()> {
        match self {
            ApplicationQueue::Internal(_) => Ok(()),
            ApplicationQueue::Sqs(q) => q.delete(message).await,
        }
    }

    /// Gives an unfinished message back to the queue at once (shutdown).
    pub async fn release(&self, message: &Received) -> Result<()> {
        match self {
            ApplicationQueue::Internal(_) => Ok(()),
            ApplicationQueue::Sqs(q) => q.release(message).await,
        }
    }

    /// Takes a message that cannot be processed out of circulation: to the dead-letter queue
    /// when one is configured, else dropped with an error log.
    pub async fn dead_letter(&self, message: &Received, reason: &str) -> Result<()> {
        match self {
            ApplicationQueue::Internal(_) => {
                let shown = crate::guest_text::shortened(&message.body, 200);
                tracing::error!("dropping application queue message: {reason}; body: {shown}");
                Ok(())
            }
            ApplicationQueue::Sqs(q) => q.dead_letter(message, reason).await,
        }
    }

    /// Deliveries after which a message is taken out of circulation.
    pub fn max_receive_count(&self) -> u32 {
        match self {
            ApplicationQueue::Internal(_) => 1,
            ApplicationQueue::Sqs(q) => q.max_receive_count,
        }
    }

    /// Messages still waiting in this process (for the shutdown report).
    pub fn pending(&self) -> usize {
        match self {
            ApplicationQueue::Internal(q) => q.pending(),
            ApplicationQueue::Sqs(_) => 0,
        }
    }
}

/// The queue that carries `process_monitor`, `event` and `request` messages to executors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationQueueConfig {
    /// `type`: `internal` (the default) or `plugin.aws.sqs`.
    #[serde(rename = "type")]
    pub kind: QueueKind,
    /// SQS only: the queue name (looked up with GetQueueUrl at start).
    #[serde(default)]
    pub name: Option<String>,
    /// SQS only: the queue URL; checked against the URL of `name`.
    #[serde(default)]
    pub url: Option<String>,
    /// SQS only: the region, else `AWS_APPLICATION_REGION`.
    #[serde(default)]
    pub region: Option<String>,
    /// SQS only: create the queue at start if it does not exist.
    #[serde(default)]
    pub create_queue: bool,
    /// Long-poll wait of one receive, in seconds.
    #[serde(default = "ApplicationQueueConfig::default_wait")]
    pub queue_wait_message_time: u32,
    /// Time between visibility extensions while a message is processed; each receive and
    /// extension hides the message for twice this long.
    #[serde(default = "ApplicationQueueConfig::default_visibility")]
    pub queue_visibility_time: u32,
    /// SQS only: a message received this many times without being processed is moved to
    /// `dead_letter_queue` (or dropped with an error log when there is none).
    #[serde(default = "ApplicationQueueConfig::default_max_receive_count")]
    pub max_receive_count: u32,
    /// SQS only: the name of a queue that takes messages that cannot be processed.
    #[serde(default)]
    pub dead_letter_queue: Option<String>,
}

impl ApplicationQueueConfig {
    fn default_wait() -> u32 {
        2
    }
    fn default_visibility() -> u32 {
        15
    }
    fn default_max_receive_count() -> u32 {
        5
    }

    /// Checks the keys that depend on the type, for errors found after parsing.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let sqs_only = [
            ("name", self.name.is_some()),
            ("url", self.url.is_some()),
            ("region", self.region.is_some()),
            ("create_queue", self.create_queue),
            ("dead_letter_queue", self.dead_letter_queue.is_some()),
        ];
        match self.kind {
            QueueKind::Internal => {
                if let Some((key, _)) = sqs_only.iter().find(|(_, set)| *set) {
                    return Err(format!(
                        "application_queue.{key} applies to SQS queues only (type: plugin.aws.sqs)"
                    ));
                }
            }
            QueueKind::Sqs => {
                if self.name.is_none() {
                    return Err("application_queue.name is required for an SQS queue".into());
                }
                if !(1..=20).contains(&self.queue_wait_message_time) {
                    return Err("application_queue.queue_wait_message_time must be between 1 and 20 seconds (SQS's long-poll range)".into());
                }
                if !(1..=21_600).contains(&self.queue_visibility_time) {
                    return Err("application_queue.queue_visibility_time must be between 1 and 21600 seconds".into());
                }
                if self.max_receive_count == 0 {
                    return Err("application_queue.max_receive_count must be at least 1".into());
                }
            }
        }
        Ok(())
    }
}

impl Default for ApplicationQueueConfig {
    fn default() -> Self {
        ApplicationQueueConfig {
            kind: QueueKind::Internal,
            name: None,
            url: None,
            region: None,
            create_queue: false,
            queue_wait_message_time: Self::default_wait(),
            queue_visibility_time: Self::default_visibility(),
            max_receive_count: Self::default_max_receive_count(),
            dead_letter_queue: None,
        }
    }
}

/// The application queue's `type`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// In-process queue: one `sentinela run` process schedules and executes.
    #[default]
    Internal,
    /// An SQS queue shared by any number of processes (host plugin `aws`).
    Sqs,
}

impl<'de> Deserialize<'de> for QueueKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match name.as_str() {
            "internal" => Ok(QueueKind::Internal),
            "plugin.aws.sqs" | "plugin.aws.queues.sqs" => Ok(QueueKind::Sqs),
            other => Err(de::Error::custom(format!(
                "invalid queue type '{other}', expected 'internal' or 'plugin.aws.sqs'"
            ))),
        }
    }
}
