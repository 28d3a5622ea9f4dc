//! What an operator can ask the running host: `/healthz`, `/readyz` and `/metrics` (the
//! Prometheus text format) on the `http.listen` address, off by default.
//!
//! Metrics are process-wide, so they live in one static [`METRICS`] that the code paths
//! update as they go (a counter update is an atomic add behind a read lock). Every label value
//! comes from the config (monitor and credential names) or from a bounded set the host names;
//! a guest-chosen operation name is a label only among the first [`MAX_OPERATIONS`] seen, so
//! no monitor can grow the exposition without bound.

pub mod calls;
pub mod log_writer;
mod server;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Deserialize;

pub use server::{ProbeState, serve};

/// The `http:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where `/healthz`, `/readyz` and `/metrics` are served, e.g. `127.0.0.1:9464`; none: off.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

/// Distinct (service, operation) label pairs of host calls; past it, `operation="other"`.
pub const MAX_OPERATIONS: usize = 500;

/// A metric's labels, in the order they are written.
pub type Labels = Vec<(&'static str, String)>;

/// Task durations from 1 ms to about 2 minutes.
#[derive(Clone)]
pub struct TaskBuckets;

impl MetricConstructor<Histogram> for TaskBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(0.001, 2.0, 18))
    }
}

/// Every metric of the process.
pub struct Metrics {
    /// `sentinela_tasks_total{monitor, task, outcome}`: outcome `ok`, `failed`, `deadline`.
    pub tasks: Family<Labels, Counter>,
    /// `sentinela_task_duration_seconds{monitor, task}`.
    pub task_seconds: Family<Labels, Histogram, TaskBuckets>,
    /// `sentinela_schedule_lag_seconds`: from when a scheduled trigger was due (its cron
    /// time plus the monitor's phase) to its first task's start.
    pub schedule_lag: Histogram,
    /// `sentinela_host_calls_total{actor, service, operation, outcome}`: every use of a
    /// credential or secret, as audited.
    pub host_calls: Family<Labels, Counter>,
    /// `sentinela_application_queue_total{operation, outcome}`: receives, deletes,
    /// dead-letters, releases.
    pub application_queue: Family<Labels, Counter>,
    /// `sentinela_messages_in_flight`: application-queue messages being processed.
    pub messages_in_flight: Gauge,
    /// `sentinela_credential_renewals_total{credential, outcome}`: connector fetches.
    pub credential_renewals: Family<Labels, Counter>,
    /// `sentinela_compile_cache_total{result}`: `hit`, `miss`, `invalid`.
    pub compile_cache: Family<Labels, Counter>,
    /// `sentinela_plugin_load_errors_total{monitor}`.
    pub plugin_load_errors: Family<Labels, Counter>,
    /// `sentinela_plugin_info{monitor, sha256}`: 1 per monitor loaded.
    pub plugins: Family<Labels, Gauge>,
    /// `sentinela_issue_records_total{result}`: issues a task found or updated: `skipped`
    /// (this process knew the store held that data: no statement at all), `unchanged`
    /// (the store was asked and held it) or `written` (a change committed).
    pub issue_records: Family<Labels, Counter>,
    /// `sentinela_log_lines_dropped_total`: log lines the writer's queue had no room for.
    pub log_lines_dropped: Counter,
    /// `sentinela_outbox_stuck_events`: issue events still in the outbox after a sweep that
    /// tried to publish them (the events queue refuses them, or the store cannot be read).
    pub outbox_stuck_events: Gauge,
    /// `sentinela_control_actions_total{action, outcome}`: control actions messages of the
    /// application queue asked for ([`crate::audit::control_action`]).
    pub control_actions: Family<Labels, Counter>,
    /// `sentinela_calls_total{monitor, export, outcome}`: every export call of a monitor
    /// ([`calls::CallOutcome`]).
    pub calls: Family<Labels, Counter>,
    /// `sentinela_monitor_failed_calls_in_a_row{monitor}`: the most calls of one export that
    /// failed since that export's last call that did not (created at a monitor's first
    /// failure).
    pub failed_calls_in_a_row: Family<Labels, Gauge>,
    /// `sentinela_monitor_failing{monitor}`: 1 once [`calls::FAILING_AFTER`] calls in a row
    /// failed, 0 again after a call that did not.
    pub monitor_failing: Family<Labels, Gauge>,
    operations: Mutex<HashSet<(String, String)>>,
    registry: Registry,
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sentinela");
        let metrics = Metrics {
            tasks: Family::default(),
            task_seconds: Family::new_with_constructor(TaskBuckets),
            schedule_lag: TaskBuckets.new_metric(),
            host_calls: Family::default(),
            application_queue: Family::default(),
            messages_in_flight: Gauge::default(),
            credential_renewals: Family::default(),
            compile_cache: Family::default(),
            plugin_load_errors: Family::default(),
            plugins: Family::default(),
            issue_records: Family::default(),
            log_lines_dropped: Counter::default(),
            calls: Family::default(),
            control_actions: Family::default(),
            outbox_stuck_events: Gauge::default(),
            failed_calls_in_a_row: Family::default(),
            monitor_failing: Family::default(),
            operations: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register("tasks", "Monitor tasks run", metrics.tasks.clone());
        registry.register(
            "task_duration_seconds",
            "How long monitor tasks took",
            metrics.task_seconds.clone(),
        );
        registry.register(
            "schedule_lag_seconds",
            "From when a scheduled trigger was due to its first task's start",
            metrics.schedule_lag.clone(),
        );
        registry.register(
            "host_calls",
            "Uses of a credential or secret, by monitors and by the host",
            metrics.host_calls.clone(),
        );
        registry.register(
            "application_queue",
            "Application queue operations",
            metrics.application_queue.clone(),
        );
        registry.register(
            "messages_in_flight",
            "Application queue messages being processed",
            metrics.messages_in_flight.clone(),
        );
        registry.register(
            "credential_renewals",
            "Keys fetched by credential connectors",
            metrics.credential_renewals.clone(),
        );
        registry.register(
            "compile_cache",
            "Compiled plugin lookups in the compile cache",
            metrics.compile_cache.clone(),
        );
        registry.register(
            "plugin_load_errors",
            "Monitors whose plugin could not be loaded",
            metrics.plugin_load_errors.clone(),
        );
        registry.register(
            "plugin_info",
            "Each loaded monitor's plugin, by SHA-256",
            metrics.plugins.clone(),
        );
        registry.register(
            "issue_records",
            "Issues found or updated by tasks, by whether the store was written",
            metrics.issue_records.clone(),
        );
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because the log writer's queue was full",
            metrics.log_lines_dropped.clone(),
        );
        registry.register(
            "outbox_stuck_events",
            "Issue events still in the outbox after a sweep tried to publish them",
            metrics.outbox_stuck_events.clone(),
        );
        registry.register(
            "control_actions",
            "Control actions asked for by application-queue messages, by action and outcome",
            metrics.control_actions.clone(),
        );
        registry.register(
            "calls",
            "Monitor export calls, by export and outcome (ok, error, trap, deadline, limit)",
            metrics.calls.clone(),
        );
        registry.register(
            "monitor_failed_calls_in_a_row",
            "The most calls of one export of the monitor that failed in a row",
            metrics.failed_calls_in_a_row.clone(),
        );
        registry.register(
            "monitor_failing",
            "1 while the monitor's last calls failed (several in a row), else 0",
            metrics.monitor_failing.clone(),
        );
        // The control actions' series exist from the start, at 0: an alert on `increase()`
        // sees the first one (a series that appears at 1 has no increase to show).
        for (action, outcomes) in [
            ("issue_drop", &["ok", "not_found", "error"][..]),
            ("monitor_disable", &["ok", "error"][..]),
            ("monitor_enable", &["ok", "error"][..]),
            ("monitor_refresh", &["ok", "skipped"][..]),
        ] {
            for outcome in outcomes {
                let _created = metrics.control_actions.get_or_create(&vec![
                    ("action", action.to_owned()),
                    ("outcome", (*outcome).to_owned()),
                ]);
            }
        }
        let build = Family::<Labels, Gauge>::default();
        build
            .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_owned())])
            .set(1);
        registry.register("build_info", "This sentinela's version", build);
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The exposition, in the Prometheus (OpenMetrics) text format.
    pub fn encode(&self) -> String {
        log_writer::count_dropped();
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }

    /// Counts a finished task. A monitor's own [`TaskSeries`] does the same without a
    /// lookup per task.
    pub fn task(&self, monitor: &str, task: &str, outcome: &'static str, took: Duration) {
        self.task_count(monitor, task, outcome).inc();
        self.task_duration(monitor, task)
            .observe(took.as_secs_f64());
    }

    /// The `sentinela_tasks_total` series of a monitor's task and outcome.
    fn task_count(&self, monitor: &str, task: &str, outcome: &str) -> Counter {
        self.tasks
            .get_or_create(&vec![
                ("monitor", monitor.to_owned()),
                ("task", task.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .clone()
    }

    /// The `sentinela_task_duration_seconds` series of a monitor's task.
    fn task_duration(&self, monitor: &str, task: &str) -> Histogram {
        self.task_seconds
            .get_or_create(&vec![
                ("monitor", monitor.to_owned()),
                ("task", task.to_owned()),
            ])
            .clone()
    }

    /// Counts `count` audited uses of a credential or secret.
    pub fn host_calls(
        &self,
        actor: &'static str,
        service: &str,
        operation: &str,
        outcome: &str,
        count: u64,
    ) {
        let operation = self.bounded_operation(service, operation);
        self.host_calls
            .get_or_create(&vec![
                ("actor", actor.to_owned()),
                ("service", self.bounded_operation("", service)),
                ("operation", operation),
                ("outcome", outcome.to_owned()),
            ])
            .inc_by(count);
    }

    /// Counts one control action ([`crate::audit::control_action`]).
    pub fn control_action(&self, action: &'static str, outcome: &'static str) {
        self.control_actions
            .get_or_create(&vec![
                ("action", action.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    /// Counts one application-queue operation.
    pub fn application_queue(&self, operation: &'static str, ok: bool) {
        self.application_queue
            .get_or_create(&vec![
                ("operation", operation.to_owned()),
                ("outcome", if ok { "ok" } else { "error" }.to_owned()),
            ])
            .inc();
    }

    /// Counts one compile-cache lookup: `hit`, `miss` or `invalid`.
    pub fn compile_cache(&self, result: &'static str) {
        self.compile_cache
            .get_or_create(&vec![("result", result.to_owned())])
            .inc();
    }

    /// `operation` as a label value, or `other` once [`MAX_OPERATIONS`] pairs are known.
    fn bounded_operation(&self, service: &str, operation: &str) -> String {
        let mut seen = self.operations.lock().unwrap_or_else(|e| e.into_inner());
        let key = (service.to_owned(), operation.to_owned());
        if seen.contains(&key) || seen.len() < MAX_OPERATIONS {
            seen.insert(key);
            operation.to_owned()
        } else {
            "other".to_owned()
        }
    }
}

/// The `task` label values of [`Metrics::tasks`], and its `outcome` values.
const TASKS: [&str; 2] = ["search", "update"];
const OUTCOMES: [&str; 3] = ["ok", "failed", "deadline"];

/// One monitor's task series of [`METRICS`], each looked up in its family once, at first
/// use: a lookup builds and hashes its label set, and a task made two (40,000 a second at
/// 10,000 monitors). Series of outcomes that never happen are not created.
pub struct TaskSeries {
    monitor: Arc<str>,
    counts: [[OnceLock<Counter>; OUTCOMES.len()]; TASKS.len()],
    seconds: [OnceLock<Histogram>; TASKS.len()],
}

impl TaskSeries {
    /// The series of the monitor of that config name.
    pub fn new(monitor: Arc<str>) -> TaskSeries {
        TaskSeries {
            monitor,
            counts: Default::default(),
            seconds: Default::default(),
        }
    }

    /// Counts a finished task (`task`: `search` or `update`; `outcome`: `ok`, `failed` or
    /// `deadline`), as [`Metrics::task`] does.
    pub fn record(&self, task: &str, outcome: &'static str, took: Duration) {
        let t = TASKS.iter().position(|known| *known == task);
        let o = OUTCOMES.iter().position(|known| *known == outcome);
        let (Some(t), Some(o)) = (t, o) else {
            return METRICS.task(&self.monitor, task, outcome, took);
        };
        self.counts[t][o]
            .get_or_init(|| METRICS.task_count(&self.monitor, task, outcome))
            .inc();
        self.seconds[t]
            .get_or_init(|| METRICS.task_duration(&self.monitor, task))
            .observe(took.as_secs_f64());
    }
}

/// Whether the application queue answered last time: the executor's receives and the
/// scheduler's sends set it, `/readyz` reads it.
pub static QUEUE_REACHABLE: AtomicBool = AtomicBool::new(true);

/// Monitors of the config whose plugin could not be loaded (at start; a config reload that
/// loads them all clears it): `/readyz` is not ready while any is listed.
static NOT_LOADED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Records which monitors could not be loaded.
pub fn set_not_loaded(monitors: Vec<String>) {
    *NOT_LOADED.lock().unwrap_or_else(|e| e.into_inner()) = monitors;
}

/// Records one more monitor that could not be loaded (a load finished after the start).
pub fn add_not_loaded(monitor: &str) {
    NOT_LOADED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(monitor.to_owned());
}

/// The monitors that could not be loaded.
pub fn not_loaded() -> Vec<String> {
    NOT_LOADED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Monitors whose plugin is still being compiled after the start (`/readyz` is not ready
/// while any is listed: the host does not run its whole config yet).
static LOADING: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Records the monitors being loaded in the background; each leaves the list with
/// [`loaded`].
pub fn set_loading(monitors: Vec<String>) {
    *LOADING.lock().unwrap_or_else(|e| e.into_inner()) = monitors;
}

/// The monitor's background load ended (loaded or not).
pub fn loaded(monitor: &str) {
    LOADING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|m| m != monitor);
}

/// The monitors still being loaded in the background.
pub fn loading() -> Vec<String> {
    LOADING.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Records whether the application queue answered.
pub fn queue_reachable(reachable: bool) {
    QUEUE_REACHABLE.store(reachable, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_chosen_operations_cannot_grow_the_exposition_without_bound() {
        let metrics = Metrics::new();
        for i in 0..10_000 {
            metrics.host_calls("monitor", "sqs", &format!("Op{i}"), "aws-error", 1);
        }
        let text = metrics.encode();
        let lines = text
            .lines()
            .filter(|l| l.starts_with("sentinela_host_calls"))
            .count();
        assert!(lines <= MAX_OPERATIONS + 1, "{lines} lines");
        assert!(text.contains(r#"operation="other""#));
    }

    #[test]
    fn a_monitors_own_series_are_the_families_series() {
        let series = TaskSeries::new("series-test".into());
        series.record("search", "ok", Duration::from_millis(3));
        series.record("search", "ok", Duration::from_millis(5));
        METRICS.task("series-test", "search", "ok", Duration::from_millis(4));
        series.record("update", "deadline", Duration::from_secs(2));
        let text = METRICS.encode();
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
                .to_owned()
        };
        assert!(
            line(r#"sentinela_tasks_total{monitor="series-test",task="search",outcome="ok"}"#)
                .ends_with(" 3")
        );
        assert!(
            line(
                r#"sentinela_tasks_total{monitor="series-test",task="update",outcome="deadline"}"#
            )
            .ends_with(" 1")
        );
        assert!(
            line(r#"sentinela_task_duration_seconds_count{monitor="series-test",task="search"}"#)
                .ends_with(" 3")
        );
        assert!(!text.contains(r#"monitor="series-test",task="search",outcome="failed""#));
    }
}
