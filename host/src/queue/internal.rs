//! The in-process queue (`type: internal`): one process both schedules and executes.

use std::time::{Duration, SystemTime};

use tokio::sync::{Mutex, mpsc};

use super::Received;

/// An unbounded in-process channel: each message is handed out once, in order, and never
/// redelivered.
pub struct InternalQueue {
    sender: mpsc::UnboundedSender<(String, Option<SystemTime>)>,
    receiver: Mutex<mpsc::UnboundedReceiver<(String, Option<SystemTime>)>>,
}

impl InternalQueue {
    /// An empty queue.
    pub fn new() -> InternalQueue {
        let (sender, receiver) = mpsc::unbounded_channel();
        InternalQueue {
            sender,
            receiver: Mutex::new(receiver),
        }
    }

    /// Appends a message; never blocks, and cannot fail while `self` lives.
    pub fn send(&self, body: String, triggered_at: Option<SystemTime>) -> anyhow::Result<()> {
        // The receiver lives as long as `self`, so sending cannot fail.
        self.sender
            .send((body, triggered_at))
            .map_err(|_| anyhow::anyhow!("internal queue closed"))
    }

    /// The next message, or `None` if none arrives in time: waits up to `wait` for another
    /// receiver to finish, then up to `wait` for a message.
    pub async fn receive(&self, wait: Duration) -> Option<Received> {
        let mut receiver = tokio::time::timeout(wait, self.receiver.lock())
            .await
            .ok()?;
        let (body, triggered_at) = tokio::time::timeout(wait, receiver.recv()).await.ok()??;
        Some(Received {
            body,
            message_id: None,
            receipt_handle: None,
            receive_count: 1,
            triggered_at,
            sender_id: None,
            sent_at: None,
        })
    }

    /// Messages sent but not yet received (best effort: 0 while a receive is under way), for the
    /// shutdown report.
    pub fn pending(&self) -> usize {
        self.receiver.try_lock().map(|r| r.len()).unwrap_or(0)
    }
}

impl Default for InternalQueue {
    fn default() -> Self {
        Self::new()
    }
}
