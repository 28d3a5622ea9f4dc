//! Raises an issue for every message that has waited more than five minutes on the queue
//! declared as `watched` in the config (and granted to this monitor): its consumers are
//! stuck or gone. It only peeks: every message it receives is made visible again at once.
use sentinela_monitor::queue::{self, Message};
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, json};
use std::time::{SystemTime, UNIX_EPOCH};

const QUEUE: &str = "watched";
const MAX_AGE_MS: u64 = 5 * 60 * 1000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Up to ten waiting messages, left where they were.
fn peek() -> Result<Vec<Message>> {
    let messages = queue::receive(QUEUE, 10, 0)?;
    for message in &messages {
        queue::change_visibility(QUEUE, message, 0)?;
    }
    Ok(messages)
}

struct QueueAge;

impl Monitor for QueueAge {
    fn search() -> Result<Vec<Issue>> {
        let now = now_ms();
        Ok(peek()?
            .into_iter()
            .filter(|m| now.saturating_sub(m.sent_at_ms) > MAX_AGE_MS)
            .map(|m| Issue::new(m.id.clone(), json!({ "waiting_seconds": (now - m.sent_at_ms) / 1000, "receive_count": m.receive_count })))
            .collect())
    }

    fn is_solved(issue: &Issue) -> Result<bool> {
        // Solved once the message is no longer waiting (consumed or expired).
        Ok(!peek()?.iter().any(|m| m.id == issue.id))
    }
}

export_monitor!(QueueAge);
