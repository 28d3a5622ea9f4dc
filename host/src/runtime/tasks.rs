//! A monitor's tasks: `search` records the issues found; `update` refreshes the active ones
//! and asks `is-solved` for each.

use std::time::{Duration, Instant, SystemTime};

use tracing::Instrument;

use crate::message::Task;
use crate::monitor::{Call, CallError, CallErrorKind, Reply};
use crate::telemetry::METRICS;
use crate::telemetry::calls::{CallOutcome, Export};

use super::{Runtime, SLOW_AFTER, ScheduledMonitor, lock, warn_if_slow};

impl Runtime {
    /// Runs the tasks, unless the monitor's last task hit its deadline and the slots such
    /// monitors may share are all taken: then this trigger is skipped (and counted).
    pub(super) async fn run_tasks_fairly(
        &self,
        monitor: &ScheduledMonitor,
        tasks: &[Task],
        triggered_at: Option<SystemTime>,
    ) {
        let _permit = if monitor.is_suspect() {
            match self.suspect_slots.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    let mut backoff = lock(&monitor.backoff);
                    backoff.skipped += 1;
                    tracing::debug!(
                        monitor = monitor.name(),
                        skipped = backoff.skipped,
                        "other monitors that hit their deadline hold the slots they may share; trigger skipped"
                    );
                    return;
                }
            }
        } else {
            None
        };
        self.run_tasks(monitor, tasks, triggered_at).await;
    }

    /// Runs the tasks in order, each in a `task` span that names the monitor and the task,
    /// so every line a task makes the host write (the guest's included) carries both. With
    /// the time the scheduler's trigger was due, the first task's line also says how late it
    /// started (`lag_ms`, also the `sentinela_schedule_lag_seconds` histogram).
    pub async fn run_tasks(
        &self,
        monitor: &ScheduledMonitor,
        tasks: &[Task],
        mut triggered_at: Option<SystemTime>,
    ) {
        // One verdict per message: a search that hit its deadline is not forgiven by an
        // update that had nothing to do.
        let mut hit_deadline = false;
        let mut known_current = false;
        for task in tasks {
            let lag = triggered_at
                .take()
                .map(|at| SystemTime::now().duration_since(at).unwrap_or_default());
            let span = tracing::info_span!("task", monitor = monitor.name(), task = ?task);
            let ended = self
                .run_task(monitor, *task, lag, known_current)
                .instrument(span)
                .await;
            hit_deadline |= ended.hit_deadline;
            known_current = ended.known_current;
        }
        monitor.record_outcome(hit_deadline);
    }

    /// Runs one task and logs how it ended. `known_current`: what this process knows of the
    /// monitor's active issues was made current by the message's previous task a moment ago.
    async fn run_task(
        &self,
        monitor: &ScheduledMonitor,
        task: Task,
        lag: Option<Duration>,
        known_current: bool,
    ) -> TaskEnd {
        if let Some(lag) = lag {
            METRICS.schedule_lag.observe(lag.as_secs_f64());
        }
        let lag_ms = lag.map(|lag| lag.as_secs_f64() * 1e3);
        let started = Instant::now();
        let mut failed_calls = 0;
        let outcome = match task {
            Task::Search => self.search(monitor).await,
            Task::Update => self
                .update(monitor, known_current, &mut failed_calls)
                .await
                .map(|()| false),
        };
        let took = started.elapsed();
        let elapsed_ms = took.as_secs_f64() * 1e3;
        match &outcome {
            Ok(_) if failed_calls == 0 => tracing::info!(elapsed_ms, lag_ms, "task finished"),
            // Its own calls ran, but not all of them: not a task that went well.
            Ok(_) => tracing::warn!(
                elapsed_ms,
                lag_ms,
                failed_calls,
                "task ended with {failed_calls} failed call(s)"
            ),
            Err(e) => tracing::error!(elapsed_ms, lag_ms, "task failed: {e}"),
        }
        let hit_deadline = matches!(
            &outcome,
            Err(TaskError::Call(e)) if matches!(e.kind, CallErrorKind::Deadline(_))
        );
        let result = match (&outcome, hit_deadline) {
            (Ok(_), _) if failed_calls == 0 => "ok",
            (Ok(_), _) => "failed",
            (Err(_), true) => "deadline",
            (Err(_), false) => "failed",
        };
        let task_name = match task {
            Task::Search => "search",
            Task::Update => "update",
        };
        monitor.task_series.record(task_name, result, took);
        self.note_run(
            monitor.name(),
            crate::issues::LastRun::now(task_name, result),
        );
        TaskEnd {
            hit_deadline,
            known_current: matches!(outcome, Ok(true)),
        }
    }

    /// A store call of a task: a warning when it hangs; its error, explained, as
    /// [`TaskError::Store`], or a refusal by the monitor's limits as [`TaskError::Limit`].
    async fn stored<T>(
        &self,
        call: impl Future<Output = anyhow::Result<T>>,
    ) -> Result<T, TaskError> {
        match warn_if_slow("the issue store", SLOW_AFTER, call).await {
            Ok(done) => Ok(done),
            Err(e) => match e.downcast::<crate::issues::OverActiveLimit>() {
                Ok(over) => Err(TaskError::Limit(over.to_string())),
                Err(e) => Err(TaskError::Store(self.issues.explain(e).await)),
            },
        }
    }

    /// `search`, and records what it found; true when that made what this process knows of
    /// the monitor's active issues current (it found some, and recording them read the
    /// store's version).
    async fn search(&self, monitor: &ScheduledMonitor) -> Result<bool, TaskError> {
        let plugin = monitor.plugin();
        let mut known_current = false;
        let limits = &plugin.limits;
        let found = counted(
            monitor,
            Export::Search,
            plugin.call(Call::Search).await,
            |found| {
                crate::issues::check_issue_count(
                    &plugin.name,
                    "search",
                    found.len(),
                    limits.issues_per_call,
                )
            },
        )?;
        if let Reply::Issues(found) = found {
            let changes = self
                .stored(self.issues.record_found(
                    &plugin.name,
                    found,
                    limits.active_issues as usize,
                ))
                .await?;
            known_current = !changes.is_empty();
        }
        Ok(known_current)
    }

    /// `update` with the active issues, then `is-solved` for each of them: the active issues
    /// read at the task's start (or by the message's search just before, `known_current`),
    /// with what `update` changed. One read of the store's version per message, not one per
    /// step: a change another executor makes meanwhile is seen by the next message, as it
    /// would be a moment later anyway.
    async fn update(
        &self,
        monitor: &ScheduledMonitor,
        known_current: bool,
        failed_calls: &mut usize,
    ) -> Result<(), TaskError> {
        let plugin = monitor.plugin();
        let active = if known_current {
            self.stored(self.issues.active_as_known(&plugin.name))
                .await?
        } else {
            self.stored(self.issues.active(&plugin.name)).await?
        };
        if active.is_empty() {
            return Ok(());
        }
        let updated = plugin.call(Call::Update(active)).await;
        let updated = counted(monitor, Export::Update, updated, |updated| {
            crate::issues::check_issue_count(
                &plugin.name,
                "update",
                updated.len(),
                plugin.limits.issues_per_call,
            )
        })?;
        if let Reply::Issues(updated) = updated {
            self.stored(self.issues.record_updated(&plugin.name, updated))
                .await?;
        }
        let active = self
            .stored(self.issues.active_as_known(&plugin.name))
            .await?;
        // One line for the failures of a task, not one per issue: the first and a count.
        let asked = active.len();
        let mut first_failure = None;
        for issue in active {
            let id = issue.id.clone();
            let solved = plugin.call(Call::IsSolved(issue)).await;
            match counted(monitor, Export::IsSolved, solved, |_| Ok(())) {
                Ok(Reply::Solved(true)) => {
                    self.stored(self.issues.solve(&plugin.name, &id)).await?;
                }
                Ok(_) => {}
                Err(e) => {
                    *failed_calls += 1;
                    first_failure.get_or_insert((id, e));
                }
            }
        }
        if let Some((id, e)) = first_failure {
            tracing::error!(
                issue_id = crate::guest_text::shortened(&id, 64).as_str(),
                failed_calls = *failed_calls,
                "is-solved failed for {failed_calls} of {asked} issue(s); the first: {e}"
            );
        }
        Ok(())
    }
}

/// Counts a call's outcome in the monitor's call health: a `limit` when `accept` refuses
/// the issues it returned (the refusal is the task's error); the call's result otherwise.
pub(super) fn counted(
    monitor: &ScheduledMonitor,
    export: Export,
    result: Result<Reply, CallError>,
    accept: impl FnOnce(&[crate::bindings::sentinela::plugin::types::Issue]) -> Result<(), String>,
) -> Result<Reply, TaskError> {
    let (outcome, result) = match result {
        Ok(Reply::Issues(issues)) => match accept(&issues) {
            Ok(()) => (CallOutcome::Ok, Ok(Reply::Issues(issues))),
            Err(problem) => (CallOutcome::Limit, Err(TaskError::Limit(problem))),
        },
        Ok(reply) => (CallOutcome::Ok, Ok(reply)),
        Err(e) => {
            let outcome = match e.kind {
                CallErrorKind::Returned(_) => CallOutcome::Error,
                CallErrorKind::Deadline(_) => CallOutcome::Deadline,
                CallErrorKind::Limit(_) => CallOutcome::Limit,
                CallErrorKind::Panic(_) | CallErrorKind::Trap(_) => CallOutcome::Trap,
            };
            (outcome, Err(TaskError::Call(e)))
        }
    };
    let error = result.as_ref().err().map(ToString::to_string);
    monitor.calls.record(export, outcome, error.as_deref());
    result
}

/// How a task ended, for the message's next task and its verdict.
struct TaskEnd {
    /// It hit the monitor's deadline.
    hit_deadline: bool,
    /// It left what this process knows of the monitor's active issues current.
    known_current: bool,
}

/// Why a task failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The monitor's call failed.
    #[error(transparent)]
    Call(#[from] crate::monitor::CallError),
    /// A per-monitor limit refused the call's result.
    #[error("{0}")]
    Limit(String),
    /// Reading or writing the issue store failed.
    #[error("issue store: {0:#}")]
    Store(anyhow::Error),
}
