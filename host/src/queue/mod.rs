//! The application queue: how `process_monitor`, `event` and `request` messages travel from
//! whoever schedules to whoever executes.
//!
//! The set of queue types is closed (each is provided by a host plugin compiled into the
//! host), so it is an enum rather than a trait object.

mod internal;

use std::time::Duration;

use anyhow::Result;
pub use internal::InternalQueue;

use crate::aws::queue::SqsQueue;
use crate::config::{ApplicationQueueConfig, QueueKind};

pub enum ApplicationQueue {
    Internal(InternalQueue),
    Sqs(SqsQueue),
}

/// A message taken from the queue, to be deleted once processed.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: String,
    /// SQS's message id (the same for every delivery); `None` for the internal queue.
    pub message_id: Option<String>,
    /// SQS's handle for this delivery; `None` for the internal queue.
    pub receipt_handle: Option<String>,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
}

impl ApplicationQueue {
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

    /// Sends a message; returns its id where the queue assigns one.
    pub async fn send(&self, body: String) -> Result<Option<String>> {
        match self {
            ApplicationQueue::Internal(q) => q.send(body).map(|()| None),
            ApplicationQueue::Sqs(q) => q.send(body).await,
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
                let shown: String = message.body.chars().take(200).collect();
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
