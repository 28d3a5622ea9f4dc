//! What a process knows of each monitor's active issues, so that most tasks cost the store
//! one batched read of the monitor's version and nothing else.
//!
//! Every change to a monitor's issues, by any process sharing the store (executors on
//! PostgreSQL, `sentinela monitors` on SQLite), bumps that monitor's version in the change's
//! own transaction. What is known of a monitor holds while the store's version equals the
//! known one; a process reads the monitor's issues again when it does not. So a search that
//! finds what the store already holds writes nothing, and an update reads its active issues
//! from memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use crate::bindings::sentinela::plugin::types::Issue;

/// Data up to this size is kept as it is (so `active` is answered from memory); longer data
/// as its digest only. A monitor's bound is then its `limits.active_issues` times this, not
/// times the 256 KiB an issue may hold.
pub const KEPT_TEXT_BYTES: usize = 512;

/// An issue's data as this process knows the store holds it.
#[derive(Clone, PartialEq, Eq)]
pub enum KnownData {
    Text(Box<str>),
    Digest([u8; 32]),
}

impl KnownData {
    /// What is kept of `text`.
    pub fn of(text: &str) -> KnownData {
        if text.len() <= KEPT_TEXT_BYTES {
            KnownData::Text(text.into())
        } else {
            KnownData::Digest(digest(text))
        }
    }

    /// Whether the store holds `text` as far as this says.
    fn holds(&self, text: &str) -> bool {
        match self {
            KnownData::Text(known) => **known == *text,
            KnownData::Digest(known) => text.len() > KEPT_TEXT_BYTES && *known == digest(text),
        }
    }
}

/// The digest of an issue's data as stored.
fn digest(text: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).into()
}

/// One monitor's active issues by id (in byte order, as `active` lists them), valid while
/// the monitor's version in the store is `version`.
struct KnownIssues {
    version: i64,
    issues: BTreeMap<String, KnownData>,
}

/// A search's result would open more issues than the monitor may have active.
#[derive(Debug, thiserror::Error)]
#[error(
    "monitor '{monitor}': search would open {opened} issues beside its {active} active ones, \
     over its limit of {limit} (limits.active_issues); the whole result was refused"
)]
pub struct OverActiveLimit {
    /// The monitor's name.
    pub monitor: String,
    /// The distinct ids the result would open.
    pub opened: usize,
    /// The monitor's active issues.
    pub active: usize,
    /// Its `limits.active_issues`.
    pub limit: usize,
}

/// What this process knows, by monitor.
#[derive(Default)]
pub struct Known(Mutex<HashMap<String, KnownIssues>>);

impl Known {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, KnownIssues>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether what is known of the monitor holds at the store's `version`.
    pub fn is_current(&self, monitor: &str, version: i64) -> bool {
        self.lock()
            .get(monitor)
            .is_some_and(|k| k.version == version)
    }

    /// Replaces what is known of the monitor with its active issues as read at `version` (or
    /// later: newer issues under an older version are read again at the next look, never the
    /// other way round).
    pub fn replace(&self, monitor: &str, version: i64, issues: &[Issue]) {
        let issues = issues
            .iter()
            .map(|issue| (issue.id.clone(), KnownData::of(&issue.data)))
            .collect();
        self.lock()
            .insert(monitor.to_owned(), KnownIssues { version, issues });
    }

    /// Records a change this process committed, which took the monitor to `version` (`None`:
    /// the issue is no longer active): kept when it was the only change since what was known,
    /// else what is known is forgotten (read again).
    pub fn note_change(&self, monitor: &str, id: &str, data: Option<KnownData>, version: i64) {
        let mut known = self.lock();
        let Some(issues) = known.get_mut(monitor) else {
            return;
        };
        if issues.version + 1 != version {
            known.remove(monitor);
            return;
        }
        issues.version = version;
        match data {
            Some(data) => issues.issues.insert(id.to_owned(), data),
            None => issues.issues.remove(id),
        };
    }

    /// Whether the store holds `text` as the data of the monitor's active issue `id`.
    pub fn holds(&self, monitor: &str, id: &str, text: &str) -> bool {
        self.lock()
            .get(monitor)
            .and_then(|k| k.issues.get(id))
            .is_some_and(|data| data.holds(text))
    }

    /// Refuses a search result that would take the monitor over `limit` active issues.
    pub fn check_active_limit<'a>(
        &self,
        monitor: &str,
        found: impl Iterator<Item = &'a str>,
        limit: usize,
    ) -> Result<(), OverActiveLimit> {
        let known = self.lock();
        let active = known.get(monitor).map(|k| &k.issues);
        let count = active.map_or(0, BTreeMap::len);
        let mut opened: Vec<&str> = found
            .filter(|id| active.is_none_or(|a| !a.contains_key(*id)))
            .collect();
        opened.sort_unstable();
        opened.dedup();
        if count + opened.len() > limit {
            return Err(OverActiveLimit {
                monitor: monitor.to_owned(),
                opened: opened.len(),
                active: count,
                limit,
            });
        }
        Ok(())
    }

    /// The monitor's active issues in id order, when every one's data is kept as it is.
    pub fn active(&self, monitor: &str) -> Option<Vec<Issue>> {
        let known = self.lock();
        known
            .get(monitor)?
            .issues
            .iter()
            .map(|(id, data)| match data {
                KnownData::Text(text) => Some(Issue {
                    id: id.clone(),
                    data: text.to_string(),
                }),
                KnownData::Digest(_) => None,
            })
            .collect()
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
    fn short_data_is_served_long_data_is_compared_by_digest() {
        let known = Known::default();
        let long = format!("\"{}\"", "x".repeat(KEPT_TEXT_BYTES));
        known.replace("m", 3, &[issue("b", "{}"), issue("a", "1")]);
        assert!(known.is_current("m", 3) && !known.is_current("m", 4));
        let active = known.active("m").unwrap();
        assert_eq!(
            active.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        known.note_change("m", "c", Some(KnownData::of(&long)), 4);
        assert!(known.holds("m", "c", &long) && !known.holds("m", "c", "2"));
        assert!(known.active("m").is_none(), "a digest cannot be served");
        known.note_change("m", "c", None, 5);
        assert_eq!(known.active("m").unwrap().len(), 2);
        // A change this process did not see in between: forgotten, read again.
        known.note_change("m", "a", Some(KnownData::of("2")), 7);
        assert!(!known.is_current("m", 7) && known.active("m").is_none());
    }

    #[test]
    fn the_active_limit_counts_distinct_new_ids() {
        let known = Known::default();
        known.replace("m", 1, &[issue("a", "1")]);
        assert!(
            known
                .check_active_limit("m", ["a", "b", "b"].into_iter(), 2)
                .is_ok()
        );
        let over = known
            .check_active_limit("m", ["b", "c"].into_iter(), 2)
            .unwrap_err();
        assert_eq!((over.opened, over.active, over.limit), (2, 1, 2));
        assert!(over.to_string().contains("limits.active_issues"));
    }
}
