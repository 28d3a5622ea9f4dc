//! Application queue messages, in Sentinela's format: a JSON object `{"type", "payload"}`.
//!
//! `process_monitor` asks an executor to run a monitor's tasks; `event` and `request` are
//! delivered to a monitor's `handle` export (`monitor_refresh` requests run tasks). Bodies
//! written by Python's `json.dumps` (with spaces) and compact JSON are both accepted.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A task of a `process_monitor` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Search,
    Update,
}

/// A parsed message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Run `tasks` (in order) for the monitor named `monitor_id`.
    ProcessMonitor {
        monitor_id: String,
        tasks: Vec<Task>,
    },
    /// An event about an alert, issue or notification of `monitor_id`.
    Event { monitor_id: String, payload: Value },
    /// An action asked of the monitor `monitor_id` (`params.target_id`).
    Request {
        action: String,
        monitor_id: String,
        payload: Value,
    },
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
    pub fn process_monitor(monitor: &str, tasks: Vec<Task>) -> Message {
        Message::ProcessMonitor {
            monitor_id: monitor.to_owned(),
            tasks,
        }
    }

    /// Parses a body. The error says what is wrong without echoing a huge body.
    pub fn parse(body: &str) -> Result<Message, String> {
        let envelope: Envelope = serde_json::from_str(body)
            .map_err(|e| format!("not a {{\"type\", \"payload\"}} JSON object: {e}"))?;
        let payload = envelope.payload.ok_or("message has no 'payload' field")?;
        match envelope.kind.as_str() {
            "process_monitor" => {
                let p: ProcessMonitorPayload = serde_json::from_value(payload)
                    .map_err(|e| format!("invalid process_monitor payload: {e}"))?;
                if p.tasks.is_empty() {
                    return Err("invalid process_monitor payload: 'tasks' is empty".into());
                }
                Ok(Message::ProcessMonitor {
                    monitor_id: p.monitor_id.into_string(),
                    tasks: p.tasks,
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
            other => Err(format!("unknown message type '{other}'")),
        }
    }

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

    #[test]
    fn rejects_bad_bodies() {
        assert!(Message::parse("not json").unwrap_err().contains("JSON"));
        assert!(Message::parse("{}").is_err());
        assert!(
            Message::parse(r#"{"type":"x","payload":{}}"#)
                .unwrap_err()
                .contains("unknown message type 'x'")
        );
        assert!(
            Message::parse(r#"{"type":"process_monitor","payload":{}}"#)
                .unwrap_err()
                .contains("invalid")
        );
        assert!(
            Message::parse(r#"{"type":"process_monitor","payload":{"monitor_id":"a","tasks":[]}}"#)
                .is_err()
        );
    }
}
