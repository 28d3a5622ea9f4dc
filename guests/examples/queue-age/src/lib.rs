//! Raises an issue for every message that has waited more than `max_age_seconds` (default
//! 300) on the queue named by the `queue` setting (default `watched`; declared in the
//! config's `queues:` and granted to this monitor): its consumers are stuck or gone. It only
//! peeks: every message it receives is made visible again at once.
use sentinela_monitor::queue::{self, Message};
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, json, settings};
use std::time::{SystemTime, UNIX_EPOCH};

fn watched_queue() -> Result<String> {
    Ok(settings::get("queue")?.unwrap_or_else(|| "watched".into()))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Up to ten waiting messages, left where they were.
fn peek() -> Result<Vec<Message>> {
    let queue_name = watched_queue()?;
    let messages = queue::receive(&queue_name, 10, 0)?;
    for message in &messages {
        queue::change_visibility(&queue_name, message, 0)?;
    }
    Ok(messages)
}

struct QueueAge;

impl Monitor for QueueAge {
    fn search() -> Result<Vec<Issue>> {
        let now = now_ms();
        let max_age_ms = settings::parse_or("max_age_seconds", 300u64)?.saturating_mul(1000);
        Ok(peek()?
            .into_iter()
            .filter(|m| now.saturating_sub(m.sent_at_ms) > max_age_ms)
            .map(|m| Issue::new(m.id.clone(), json!({ "waiting_seconds": (now - m.sent_at_ms) / 1000, "receive_count": m.receive_count })))
            .collect())
    }

    fn is_solved(issue: &Issue) -> Result<bool> {
        // Solved once the message is no longer waiting (consumed or expired).
        Ok(!peek()?.iter().any(|m| m.id == issue.id))
    }
}

export_monitor!(QueueAge);
