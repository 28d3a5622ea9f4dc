//! The issues each monitor has found, kept in memory for the life of the process.
//!
//! Issues are keyed by (monitor, id). `search` creates issues or refreshes an active one with
//! the same id; `update` refreshes active issues; `is-solved` closes them. Every change is a
//! structured log event on the `sentinela::issues` target.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use crate::bindings::sentinela::plugin::types::Issue;

pub const TARGET: &str = "sentinela::issues";

/// Largest `data` a monitor may attach to one issue.
pub const MAX_DATA_BYTES: usize = 256 << 10;
/// Longest issue id.
pub const MAX_ID_BYTES: usize = 256;
/// Solved issues remembered per monitor (oldest are forgotten first).
const SOLVED_KEPT: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Solved,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoredIssue {
    pub monitor: String,
    pub id: String,
    pub status: Status,
    pub data: Value,
    #[serde(with = "unix_seconds")]
    pub created_at: SystemTime,
    #[serde(with = "unix_seconds")]
    pub updated_at: SystemTime,
    #[serde(with = "unix_seconds::option")]
    pub solved_at: Option<SystemTime>,
}

#[derive(Default)]
struct MonitorIssues {
    active: BTreeMap<String, StoredIssue>,
    solved: Vec<StoredIssue>,
}

/// What happened to one issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Unchanged,
    Solved,
}

#[derive(Default)]
pub struct IssueStore {
    monitors: Mutex<HashMap<String, MonitorIssues>>,
}

impl IssueStore {
    pub fn new() -> IssueStore {
        IssueStore::default()
    }

    /// Records issues `search` found: new ids are created, active ids get the new data.
    pub fn record_found(&self, monitor: &str, found: Vec<Issue>) -> Vec<Change> {
        let valid = validate(monitor, "search", found);
        let mut monitors = self.lock();
        let issues = monitors.entry(monitor.to_owned()).or_default();
        valid
            .into_iter()
            .map(|(id, data)| upsert(issues, monitor, id, data, true))
            .collect()
    }

    /// Applies data `update` returned; ids that are not active are ignored with a warning.
    pub fn record_updated(&self, monitor: &str, updated: Vec<Issue>) -> Vec<Change> {
        let valid = validate(monitor, "update", updated);
        let mut monitors = self.lock();
        let issues = monitors.entry(monitor.to_owned()).or_default();
        valid
            .into_iter()
            .map(|(id, data)| upsert(issues, monitor, id, data, false))
            .collect()
    }

    /// Marks an active issue solved.
    pub fn solve(&self, monitor: &str, id: &str) -> bool {
        let mut monitors = self.lock();
        let Some(issues) = monitors.get_mut(monitor) else {
            return false;
        };
        let Some(mut issue) = issues.active.remove(id) else {
            return false;
        };
        let now = SystemTime::now();
        issue.status = Status::Solved;
        issue.solved_at = Some(now);
        issue.updated_at = now;
        tracing::info!(target: TARGET, monitor, issue_id = %id, event = "solved", "issue solved");
        issues.solved.push(issue);
        if issues.solved.len() > SOLVED_KEPT {
            issues.solved.remove(0);
        }
        true
    }

    /// The monitor's active issues, as the guest sees them.
    pub fn active(&self, monitor: &str) -> Vec<Issue> {
        self.lock()
            .get(monitor)
            .map(|m| {
                m.active
                    .values()
                    .map(|i| Issue {
                        id: i.id.clone(),
                        data: i.data.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every issue, active first, for listings.
    pub fn all(&self) -> Vec<StoredIssue> {
        let monitors = self.lock();
        let mut all: Vec<_> = monitors
            .values()
            .flat_map(|m| m.active.values().chain(&m.solved))
            .cloned()
            .collect();
        all.sort_by(|a, b| {
            (&a.monitor, a.status == Status::Solved, &a.id).cmp(&(
                &b.monitor,
                b.status == Status::Solved,
                &b.id,
            ))
        });
        all
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, MonitorIssues>> {
        self.monitors.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn upsert(
    issues: &mut MonitorIssues,
    monitor: &str,
    id: String,
    data: Value,
    create: bool,
) -> Change {
    let now = SystemTime::now();
    if let Some(issue) = issues.active.get_mut(&id) {
        if issue.data == data {
            return Change::Unchanged;
        }
        issue.data = data;
        issue.updated_at = now;
        tracing::info!(target: TARGET, monitor, issue_id = %id, event = "updated", data = %issue.data, "issue updated");
        return Change::Updated;
    }
    if !create {
        tracing::warn!(monitor, issue_id = %id, "update returned an issue that is not active; ignored");
        return Change::Unchanged;
    }
    tracing::info!(target: TARGET, monitor, issue_id = %id, event = "created", data = %data, "issue created");
    let issue = StoredIssue {
        monitor: monitor.to_owned(),
        id: id.clone(),
        status: Status::Active,
        data,
        created_at: now,
        updated_at: now,
        solved_at: None,
    };
    issues.active.insert(id, issue);
    Change::Created
}

/// Keeps the issues whose id and data are acceptable; logs the others by monitor and id.
fn validate(monitor: &str, function: &str, issues: Vec<Issue>) -> Vec<(String, Value)> {
    let mut seen = std::collections::HashSet::new();
    let mut valid = Vec::with_capacity(issues.len());
    for Issue { id, data } in issues {
        let shown: String = id.chars().take(64).collect();
        let problem =
            if id.is_empty() || id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) {
                Some(format!(
                    "invalid issue id (1 to {MAX_ID_BYTES} bytes, no control characters)"
                ))
            } else if data.len() > MAX_DATA_BYTES {
                Some(format!(
                    "issue data is {} bytes, over the {MAX_DATA_BYTES} byte limit",
                    data.len()
                ))
            } else if !seen.insert(id.clone()) {
                Some("the same id appears twice in one result".to_owned())
            } else {
                None
            };
        if let Some(problem) = problem {
            tracing::warn!(monitor, function, issue_id = %shown, "dropping issue: {problem}");
            continue;
        }
        match serde_json::from_str::<Value>(&data) {
            Ok(value @ Value::Object(_)) => valid.push((id, value)),
            Ok(_) => {
                tracing::warn!(monitor, function, issue_id = %shown, "dropping issue: data is not a JSON object")
            }
            Err(e) => {
                tracing::warn!(monitor, function, issue_id = %shown, "dropping issue: data is not JSON: {e}")
            }
        }
    }
    valid
}

mod unix_seconds {
    use std::time::{SystemTime, UNIX_EPOCH};

    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        )
    }

    pub mod option {
        use super::*;
        pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(id: &str, data: &str) -> Issue {
        Issue {
            id: id.into(),
            data: data.into(),
        }
    }

    #[test]
    fn search_dedupes_by_id_and_solve_closes() {
        let store = IssueStore::new();
        assert_eq!(
            store.record_found("m", vec![issue("a", r#"{"n":1}"#)]),
            vec![Change::Created]
        );
        assert_eq!(
            store.record_found("m", vec![issue("a", r#"{"n":1}"#)]),
            vec![Change::Unchanged]
        );
        assert_eq!(
            store.record_found("m", vec![issue("a", r#"{"n":2}"#)]),
            vec![Change::Updated]
        );
        assert_eq!(store.active("m").len(), 1);
        assert!(store.solve("m", "a"));
        assert!(!store.solve("m", "a"));
        assert!(store.active("m").is_empty());
        assert_eq!(store.all()[0].status, Status::Solved);
    }

    #[test]
    fn invalid_issues_are_dropped() {
        let store = IssueStore::new();
        let changes = store.record_found(
            "m",
            vec![
                issue("", "{}"),
                issue("x", "[1]"),
                issue("y", "nope"),
                issue("z", "{}"),
                issue("z", "{}"),
            ],
        );
        assert_eq!(changes, vec![Change::Created]);
        assert_eq!(
            store.record_updated("m", vec![issue("unknown", "{}")]),
            vec![Change::Unchanged]
        );
    }
}
