//! Every export call of a monitor counts: its outcome in `sentinela_calls_total`, and the
//! monitor's call health (each export's last outcome, failed calls in a row, the last
//! error) for `/metrics`, the log and `sentinela monitors`.

use std::sync::{Arc, Mutex, OnceLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::METRICS;

/// After this many failed calls in a row (of any export) a monitor is failing: logged once,
/// `sentinela_monitor_failing` 1, shown by `sentinela monitors`, until a call succeeds.
pub const FAILING_AFTER: u32 = 3;

/// The longest last error kept, in characters (it is the monitor's text, escaped).
const LAST_ERROR_CHARS: usize = 300;

/// A monitor export, as the `export` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    /// `search`.
    Search,
    /// `update`.
    Update,
    /// `is-solved`, once per active issue.
    IsSolved,
    /// `handle`, for a queue message.
    Handle,
}

impl Export {
    const ALL: [Export; 4] = [
        Export::Search,
        Export::Update,
        Export::IsSolved,
        Export::Handle,
    ];

    /// Its name in the WIT world.
    pub fn as_str(self) -> &'static str {
        match self {
            Export::Search => "search",
            Export::Update => "update",
            Export::IsSolved => "is-solved",
            Export::Handle => "handle",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How one export call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// It returned a result the host took.
    Ok,
    /// It returned an error value.
    Error,
    /// It trapped or panicked.
    Trap,
    /// It ran past its deadline and was stopped.
    Deadline,
    /// A limit stopped it, or refused its result.
    Limit,
}

impl CallOutcome {
    const ALL: [CallOutcome; 5] = [
        CallOutcome::Ok,
        CallOutcome::Error,
        CallOutcome::Trap,
        CallOutcome::Deadline,
        CallOutcome::Limit,
    ];

    /// Its `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::Error => "error",
            CallOutcome::Trap => "trap",
            CallOutcome::Deadline => "deadline",
            CallOutcome::Limit => "limit",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What `sentinela monitors` shows of a monitor's calls, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallsRecord {
    /// Each export's last outcome, e.g. `search ok, update ok, is-solved error`.
    pub last: String,
    /// The most failed calls in a row of any one export.
    pub failed_in_a_row: u32,
    /// The last failed call's error, escaped and cut.
    pub last_error: Option<String>,
}

/// One monitor's call health and its series of [`METRICS`] (each looked up once, at first
/// use; the gauges exist from the monitor's first failure on).
pub struct CallHealth {
    monitor: Arc<str>,
    counts: [[OnceLock<Counter>; CallOutcome::ALL.len()]; Export::ALL.len()],
    in_a_row: OnceLock<Gauge>,
    failing: OnceLock<Gauge>,
    state: Mutex<HealthState>,
}

#[derive(Default)]
struct HealthState {
    last: [Option<CallOutcome>; Export::ALL.len()],
    /// Each export's failed calls since its last call that did not fail.
    in_a_row: [u32; Export::ALL.len()],
    last_error: Option<String>,
    /// Changed since the store was last given it ([`CallHealth::take_changed`]).
    changed: bool,
}

impl HealthState {
    /// The most failed calls in a row of any export.
    fn failed_in_a_row(&self) -> u32 {
        self.in_a_row.iter().copied().max().unwrap_or(0)
    }
}

impl CallHealth {
    /// The call health of the monitor of that config name: nothing called yet.
    pub fn new(monitor: Arc<str>) -> CallHealth {
        CallHealth {
            monitor,
            counts: Default::default(),
            in_a_row: OnceLock::new(),
            failing: OnceLock::new(),
            state: Mutex::default(),
        }
    }

    /// Counts one call and takes in how it ended; `error` is the failed call's error (the
    /// monitor's words: escaped and cut here). A monitor is failing while any one export's
    /// last [`FAILING_AFTER`] calls or more failed (a search that works does not hide an
    /// `is-solved` that never does); that is said once when it starts and once when it ends.
    pub fn record(&self, export: Export, outcome: CallOutcome, error: Option<&str>) {
        self.counts[export.index()][outcome.index()]
            .get_or_init(|| {
                METRICS
                    .calls
                    .get_or_create(&vec![
                        ("monitor", self.monitor.to_string()),
                        ("export", export.as_str().to_owned()),
                        ("outcome", outcome.as_str().to_owned()),
                    ])
                    .clone()
            })
            .inc();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.last[export.index()] != Some(outcome) {
            state.last[export.index()] = Some(outcome);
            state.changed = true;
        }
        let before = state.failed_in_a_row();
        if outcome == CallOutcome::Ok {
            if state.in_a_row[export.index()] == 0 {
                return; // the common case: nothing changes
            }
            state.in_a_row[export.index()] = 0;
        } else {
            let count = &mut state.in_a_row[export.index()];
            *count = count.saturating_add(1);
            state.last_error = error.map(|e| crate::guest_text::shortened(e, LAST_ERROR_CHARS));
        }
        state.changed = true;
        let after = state.failed_in_a_row();
        let last_error = state.last_error.clone().unwrap_or_default();
        drop(state);
        self.in_a_row().set(i64::from(after));
        if before < FAILING_AFTER && after >= FAILING_AFTER {
            self.failing().set(1);
            tracing::warn!(
                monitor = &*self.monitor,
                export = export.as_str(),
                failed_calls = after,
                "monitor failing: its last {after} {} calls failed; the last: {last_error}",
                export.as_str()
            );
        } else if before >= FAILING_AFTER && after < FAILING_AFTER {
            self.failing().set(0);
            tracing::info!(
                monitor = &*self.monitor,
                export = export.as_str(),
                "monitor no longer failing: a {} call succeeded",
                export.as_str()
            );
        }
    }

    /// What changed since the last time it was taken, for the store.
    pub fn take_changed(&self) -> Option<CallsRecord> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !std::mem::take(&mut state.changed) {
            return None;
        }
        let last = Export::ALL
            .iter()
            .filter_map(|export| {
                state.last[export.index()]
                    .map(|outcome| format!("{} {}", export.as_str(), outcome.as_str()))
            })
            .collect::<Vec<_>>()
            .join(", ");
        Some(CallsRecord {
            last,
            failed_in_a_row: state.failed_in_a_row(),
            last_error: state.last_error.clone(),
        })
    }

    /// Whether the monitor is failing now.
    pub fn is_failing(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failed_in_a_row()
            >= FAILING_AFTER
    }

    fn in_a_row(&self) -> &Gauge {
        self.in_a_row.get_or_init(|| {
            METRICS
                .failed_calls_in_a_row
                .get_or_create(&vec![("monitor", self.monitor.to_string())])
                .clone()
        })
    }

    fn failing(&self) -> &Gauge {
        self.failing.get_or_init(|| {
            METRICS
                .monitor_failing
                .get_or_create(&vec![("monitor", self.monitor.to_string())])
                .clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_after_calls_in_a_row_and_no_longer_after_one_success() {
        let health = CallHealth::new("t-health".into());
        health.record(Export::Search, CallOutcome::Ok, None);
        assert_eq!(
            health.take_changed().unwrap(),
            CallsRecord {
                last: "search ok".into(),
                failed_in_a_row: 0,
                last_error: None
            }
        );
        assert_eq!(health.take_changed(), None, "nothing changed");
        for _ in 0..FAILING_AFTER {
            assert!(!health.is_failing());
            // Other exports that work do not hide the one that never does.
            health.record(Export::Update, CallOutcome::Ok, None);
            health.record(Export::IsSolved, CallOutcome::Error, Some("KeyError\n'x'"));
        }
        assert!(health.is_failing());
        let record = health.take_changed().unwrap();
        assert_eq!(record.last, "search ok, update ok, is-solved error");
        assert_eq!(record.failed_in_a_row, FAILING_AFTER);
        assert_eq!(record.last_error.as_deref(), Some("KeyError\\n'x'"));
        let text = METRICS.encode();
        assert!(
            text.contains(
                "sentinela_calls_total{monitor=\"t-health\",export=\"is-solved\",outcome=\"error\"} 3"
            ),
            "{text}"
        );
        assert!(text.contains("sentinela_monitor_failing{monitor=\"t-health\"} 1"));
        health.record(Export::Search, CallOutcome::Ok, None);
        assert!(
            health.is_failing(),
            "a search does not end an is-solved failure"
        );
        health.record(Export::IsSolved, CallOutcome::Ok, None);
        assert!(!health.is_failing());
        assert!(
            METRICS
                .encode()
                .contains("sentinela_monitor_failing{monitor=\"t-health\"} 0")
        );
    }
}
