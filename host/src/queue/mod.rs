//! The application queue: how `process_monitor`, `event` and `request` messages travel from
//! whoever schedules to whoever executes.
//!
//! The set of queue types is closed (each is provided by a host plugin compiled into the
//! host), so it is an enum rather than a trait object.

mod internal;

use std::time::Duration;

pub use internal::InternalQueue;

use crate::config::{ApplicationQueueConfig, QueueKind};

pub enum ApplicationQueue {
    Internal(InternalQueue),
}

/// A message taken from the queue, to be deleted once processed.
#[derive(Debug)]
pub struct Received {
    pub body: String,
}

impl ApplicationQueue {
    pub fn from_config(config: &ApplicationQueueConfig) -> ApplicationQueue {
        match config.kind {
            QueueKind::Internal => ApplicationQueue::Internal(InternalQueue::new()),
        }
    }

    pub async fn send(&self, body: String) -> anyhow::Result<()> {
        match self {
            ApplicationQueue::Internal(q) => q.send(body),
        }
    }

    /// Waits up to `wait` for a message.
    pub async fn receive(&self, wait: Duration) -> anyhow::Result<Option<Received>> {
        match self {
            ApplicationQueue::Internal(q) => Ok(q.receive(wait).await),
        }
    }

    /// Acknowledges a processed message. The internal queue hands each message out once, so
    /// there is nothing to delete.
    pub async fn delete(&self, _message: &Received) -> anyhow::Result<()> {
        match self {
            ApplicationQueue::Internal(_) => Ok(()),
        }
    }

    /// Messages still waiting (for the shutdown report).
    pub fn pending(&self) -> usize {
        match self {
            ApplicationQueue::Internal(q) => q.pending(),
        }
    }
}
