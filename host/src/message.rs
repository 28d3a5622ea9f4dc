//! Application queue messages, in Sentinela's format: a JSON object `{"type", "payload"}`.
//!
//! `process_monitor` asks an executor to run a monitor's tasks. A `request` is handled by the
//! host when it is about the monitor's running (`monitor_refresh`, `monitor_disable`,
//! `monitor_enable`, `issue_drop`), dropped when it is about something the host has no concept
//! of (`alert_*`, `plugin.*`), and otherwise delivered, like every `event`, to the
//! monitor's `handle` export. Monitors are addressed by name or by their config `id`
//! (Sentinela's integer ids). Bodies written by Python's `json.dumps` (with spaces) and
//! compact JSON are both accepted.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bindings::exports::sentinela::plugin::checks::MessageKind;

/// A task of a `process_monitor` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Call the monitor's `search` export and record the issues it finds.
    Search,
    /// Call `update` with the active issues, then `is-solved` on each one still active.
    Update,
}

/// A parsed message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Run `tasks` (in order) for the monitor named `monitor_id`.
    ProcessMonitor {
        /// The monitor's name, or its config `id` as text (Sentinela's integer ids).
        monitor_id: String,
        /// The tasks to run; never empty in a parsed message.
        tasks: Vec<Task>,
    },
    /// An event about an alert, issue or notification of `monitor_id`.
    Event {
        /// `payload.event_source_monitor_id`, as text.
        monitor_id: String,
        /// The whole payload, handed to the monitor's `handle` export as JSON text.
        payload: Value,
    },
    /// An action asked of the monitor `monitor_id` (`params.target_id`).
    Request {
        /// `payload.action`: see [`Message::into_work`] for what each one does.
        action: String,
        /// `payload.params.target_id`, as text.
        monitor_id: String,
        /// The whole payload: `monitor_refresh` reads `params.tasks` from it; other actions
        /// hand it to the monitor's `handle` export as JSON text.
        payload: Value,
    },
}

/// What a message asks of its monitor, as the executor acts on it.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// Run these tasks, as scheduled (`process_monitor`).
    Tasks(Vec<Task>),
    /// Run these tasks now, outside the schedule (`monitor_refresh`: `params.tasks`, both
    /// tasks when absent or unreadable).
    Refresh(Vec<Task>),
    /// Hand the payload to the monitor's `handle` export: events, and requests whose action
    /// the host does not handle itself.
    Handle(MessageKind, Value),
    /// Switch the monitor off (`monitor_disable`) or on (`monitor_enable`), for every
    /// process sharing the store.
    SetEnabled(bool),
    /// Drop the active issue with this store key (`issue_drop`; the target is an issue, not
    /// a monitor).
    DropIssue(i64),
    /// An action about something this host has no concept of (`alert_*`, `plugin.*`):
    /// dropped with a log line, never handed to a monitor. The action, escaped.
    Ignore(String),
}

/// Why a body is not a message; the text never echoes a huge body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidMessage(String);

impl From<&str> for InvalidMessage {
    fn from(text: &str) -> Self {
        InvalidMessage::from(text.to_owned())
    }
}

impl From<String> for InvalidMessage {
    /// Parse errors quote the body (`unknown variant ...`): escaped and bounded, as every
    /// sender's text is.
    fn from(text: String) -> Self {
        InvalidMessage(crate::guest_text::shortened(&text, MAX_REASON_CHARS))
    }
}

/// The longest reason a bad message is dead-lettered with.
const MAX_REASON_CHARS: usize = 300;

/// `tasks` without repeats, in first-seen order: a message listing `search` 25,000 times
/// runs it once.
fn distinct(tasks: Vec<Task>) -> Vec<Task> {
    let mut seen = Vec::with_capacity(2);
    for task in tasks {
        if !seen.contains(&task) {
            seen.push(task);
        }
    }
    seen
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    payload: Option<Value>,
}

#[derive(Deserialize)]
struct ProcessMonitorPayload {
    monitor_id: MonitorId,
    tasks: Vec<Task>,
}

/// Sentinela's ids are integers, ours are monitor names; accept either spelling.
#[derive(Deserialize)]
#[serde(untagged)]
enum MonitorId {
    Name(String),
    Number(i64),
}

impl MonitorId {
    fn into_string(self) -> String {
        match self {
            MonitorId::Name(name) => name,
            MonitorId::Number(n) => n.to_string(),
        }
    }
}

impl Message {
    /// A `process_monitor` message, as the scheduler sends it.
    pub fn process_monitor(monitor: &str, tasks: Vec<Task>) -> Message {
        Message::ProcessMonitor {
            monitor_id: monitor.to_owned(),
            tasks,
        }
    }

    /// The monitor the message is for: its name, or Sentinela's integer id as text.
    pub fn monitor_id(&self) -> &str {
        match self {
            Message::ProcessMonitor { monitor_id, .. }
            | Message::Event { monitor_id, .. }
            | Message::Request { monitor_id, .. } => monitor_id,
        }
    }

    /// What the message asks of its monitor.
    pub fn into_work(self) -> Work {
        match self {
            Message::ProcessMonitor { tasks, .. } => Work::Tasks(tasks),
            Message::Request {
                action, payload, ..
            } if action == "monitor_refresh" => Work::Refresh(
                payload
                    .pointer("/params/tasks")
                    .and_then(|t| serde_json::from_value::<Vec<Task>>(t.clone()).ok())
                    .map(distinct)
                    .unwrap_or_else(|| vec![Task::Search, Task::Update]),
            ),
            Message::Request { action, .. } if action == "monitor_disable" => {
                Work::SetEnabled(false)
            }
            Message::Request { action, .. } if action == "monitor_enable" => Work::SetEnabled(true),
            Message::Request {
                action, monitor_id, ..
            } if action == "issue_drop" => match monitor_id.parse() {
                Ok(key) => Work::DropIssue(key),
                Err(_) => Work::Ignore("issue_drop (its target_id is not an issue key)".into()),
            },
            // Their target is an alert or a Sentinela plugin, not a monitor: a monitor must
            // never take an alert's id for its own.
            Message::Request { action, .. }
                if action.starts_with("alert_") || action.starts_with("plugin.") =>
            {
                Work::Ignore(crate::guest_text::shortened(&action, 64))
            }
            Message::Request { payload, .. } => Work::Handle(MessageKind::Request, payload),
            Message::Event { payload, .. } => Work::Handle(MessageKind::Event, payload),
        }
    }

    /// Parses a body. The error says what is wrong without echoing a huge body.
    pub fn parse(body: &str) -> Result<Message, InvalidMessage> {
        let envelope: Envelope = serde_json::from_str(body).map_err(|e| {
            InvalidMessage::from(format!("not a {{\"type\", \"payload\"}} JSON object: {e}"))
        })?;
        let payload = envelope.payload.ok_or("message has no 'payload' field")?;
        match envelope.kind.as_str() {
            "process_monitor" => {
                let p: ProcessMonitorPayload = serde_json::from_value(payload).map_err(|e| {
                    InvalidMessage::from(format!("invalid process_monitor payload: {e}"))
                })?;
                if p.tasks.is_empty() {
                    return Err("invalid process_monitor payload: 'tasks' is empty".into());
                }
                Ok(Message::ProcessMonitor {
                    monitor_id: p.monitor_id.into_string(),
                    tasks: distinct(p.tasks),
                })
            }
            "event" => {
                let monitor = payload
                    .get("event_source_monitor_id")
                    .cloned()
                    .and_then(|v| serde_json::from_value::<MonitorId>(v).ok())
                    .ok_or("invalid event payload: missing 'event_source_monitor_id'")?;
                Ok(Message::Event {
                    monitor_id: monitor.into_string(),
                    payload,
                })
            }
            "request" => {
                let action = payload
                    .get("action")
                    .and_then(Value::as_str)
                    .ok_or("invalid request payload: missing 'action'")?
                    .to_owned();
                let monitor = payload
                    .get("params")
                    .and_then(|p| p.get("target_id"))
                    .cloned()
                    .and_then(|v| serde_json::from_value::<MonitorId>(v).ok())
                    .ok_or("invalid request payload: missing 'params.target_id'")?;
                Ok(Message::Request {
                    action,
                    monitor_id: monitor.into_string(),
                    payload,
                })
            }
            other => Err(format!("unknown message type '{other}'").into()),
        }
    }

    /// The body to send: compact `{"type", "payload"}` JSON, which [`Message::parse`] reads back.
    pub fn to_json(&self) -> String {
        let (kind, payload) = match self {
            Message::ProcessMonitor { monitor_id, tasks } => (
                "process_monitor",
                serde_json::json!({ "monitor_id": monitor_id, "tasks": tasks }),
            ),
            Message::Event { payload, .. } => ("event", payload.clone()),
            Message::Request { payload, .. } => ("request", payload.clone()),
        };
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            payload: &'a Value,
        }
        serde_json::to_string(&Body {
            kind,
            payload: &payload,
        })
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_process_monitor() {
        let m = Message::process_monitor("orders", vec![Task::Search, Task::Update]);
        let body = m.to_json();
        assert_eq!(
            body,
            r#"{"type":"process_monitor","payload":{"monitor_id":"orders","tasks":["search","update"]}}"#
        );
        assert_eq!(Message::parse(&body).unwrap(), m);
    }

    #[test]
    fn accepts_python_bodies() {
        let body =
            r#"{"type": "process_monitor", "payload": {"monitor_id": 12, "tasks": ["update"]}}"#;
        assert_eq!(
            Message::parse(body).unwrap(),
            Message::process_monitor("12", vec![Task::Update])
        );
        let body = r#"{"type": "request", "payload": {"action": "monitor_refresh", "params": {"target_id": 3, "tasks": ["search"]}}}"#;
        assert!(
            matches!(Message::parse(body).unwrap(), Message::Request { ref action, ref monitor_id, .. } if action == "monitor_refresh" && monitor_id == "3")
        );
    }

    /// Each kind of message, as Sentinela's controller and API send it, asks for its work.
    #[test]
    fn messages_ask_for_their_work() {
        let payload = |body: &str| serde_json::from_str::<Value>(body).unwrap()["payload"].clone();
        let refresh_search = r#"{"type": "request", "payload": {"action": "monitor_refresh", "params": {"target_id": "orders", "tasks": ["search"]}}}"#;
        let refresh_all = r#"{"type": "request", "payload": {"action": "monitor_refresh", "params": {"target_id": 12}}}"#;
        let refresh_unreadable = r#"{"type": "request", "payload": {"action": "monitor_refresh", "params": {"target_id": "orders", "tasks": ["reboot"]}}}"#;
        let refresh_empty = r#"{"type": "request", "payload": {"action": "monitor_refresh", "params": {"target_id": "orders", "tasks": []}}}"#;
        let other_request = r#"{"type": "request", "payload": {"action": "orders_reindex", "params": {"target_id": "orders"}}}"#;
        let disable = r#"{"type": "request", "payload": {"action": "monitor_disable", "params": {"target_id": 3}}}"#;
        let enable = r#"{"type": "request", "payload": {"action": "monitor_enable", "params": {"target_id": 3}}}"#;
        let drop_issue = r#"{"type": "request", "payload": {"action": "issue_drop", "params": {"target_id": 1057}}}"#;
        let alert = r#"{"type": "request", "payload": {"action": "alert_acknowledge", "params": {"target_id": 41}}}"#;
        let plugin = r#"{"type": "request", "payload": {"action": "plugin.slack.resend_notifications", "params": {"target_id": 41}}}"#;
        let event = r#"{"type": "event", "payload": {"event_source": "alert", "event_source_id": 7, "event_source_monitor_id": "orders", "event_name": "alert_triggered"}}"#;
        let both = vec![Task::Search, Task::Update];
        for (body, monitor, work) in [
            (
                r#"{"type": "process_monitor", "payload": {"monitor_id": "orders", "tasks": ["update", "search"]}}"#,
                "orders",
                Work::Tasks(vec![Task::Update, Task::Search]),
            ),
            (refresh_search, "orders", Work::Refresh(vec![Task::Search])),
            (refresh_all, "12", Work::Refresh(both.clone())),
            (refresh_unreadable, "orders", Work::Refresh(both.clone())),
            (refresh_empty, "orders", Work::Refresh(vec![])),
            (disable, "3", Work::SetEnabled(false)),
            (enable, "3", Work::SetEnabled(true)),
            (drop_issue, "1057", Work::DropIssue(1057)),
            (alert, "41", Work::Ignore("alert_acknowledge".into())),
            (
                plugin,
                "41",
                Work::Ignore("plugin.slack.resend_notifications".into()),
            ),
            (
                other_request,
                "orders",
                Work::Handle(MessageKind::Request, payload(other_request)),
            ),
            (
                event,
                "orders",
                Work::Handle(MessageKind::Event, payload(event)),
            ),
        ] {
            let message = Message::parse(body).unwrap();
            assert_eq!(message.monitor_id(), monitor, "{body}");
            assert_eq!(message.into_work(), work, "{body}");
        }
    }

    #[test]
    fn repeated_tasks_run_once() {
        let many = vec!["search"; 25_000].join("\", \"");
        let body = format!(
            r#"{{"type": "process_monitor", "payload": {{"monitor_id": "m", "tasks": ["{many}", "update"]}}}}"#
        );
        assert_eq!(
            Message::parse(&body).unwrap().into_work(),
            Work::Tasks(vec![Task::Search, Task::Update])
        );
        let body = format!(
            r#"{{"type": "request", "payload": {{"action": "monitor_refresh", "params": {{"target_id": "m", "tasks": ["update", "{many}", "update"]}}}}}}"#
        );
        assert_eq!(
            Message::parse(&body).unwrap().into_work(),
            Work::Refresh(vec![Task::Update, Task::Search])
        );
    }

    /// What a sender put in a message is never echoed raw or whole.
    #[test]
    fn reasons_are_escaped_and_bounded() {
        let huge = "t".repeat(256 << 10);
        for body in [
            r#"{"type": "evil\n2026-01-01 INFO forged\u001b[31m", "payload": {}}"#.to_string(),
            format!(r#"{{"type": "{huge}", "payload": {{}}}}"#),
            format!(
                r#"{{"type": "process_monitor", "payload": {{"monitor_id": "m", "tasks": ["re\nboot{huge}"]}}}}"#
            ),
        ] {
            let reason = Message::parse(&body).unwrap_err().to_string();
            assert!(
                reason.chars().count() <= MAX_REASON_CHARS + 16,
                "{} chars",
                reason.len()
            );
            assert!(
                !reason.contains('\n') && !reason.contains('\u{1b}'),
                "{reason}"
            );
        }
    }

    #[test]
    fn rejects_bad_bodies() {
        assert!(
            Message::parse("not json")
                .unwrap_err()
                .to_string()
                .contains("JSON")
        );
        assert!(Message::parse("{}").is_err());
        assert!(
            Message::parse(r#"{"type":"x","payload":{}}"#)
                .unwrap_err()
                .to_string()
                .contains("unknown message type 'x'")
        );
        assert!(
            Message::parse(r#"{"type":"process_monitor","payload":{}}"#)
                .unwrap_err()
                .to_string()
                .contains("invalid")
        );
        assert!(
            Message::parse(r#"{"type":"process_monitor","payload":{"monitor_id":"a","tasks":[]}}"#)
                .is_err()
        );
    }
}
