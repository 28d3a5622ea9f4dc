//! What the store keeps about each monitor besides its issues: whether it is switched off,
//! how its last task ended and how its export calls went (`sentinela monitors`).

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use sqlx::Row;

use super::{IssueStore, now_ms};
use crate::telemetry::calls::CallsRecord;

/// How a monitor's last task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    /// `search` or `update`.
    pub task: &'static str,
    /// `ok`, `failed` or `deadline`.
    pub outcome: &'static str,
    /// When it ended, in milliseconds since the Unix epoch.
    pub finished_at_ms: i64,
}

impl LastRun {
    /// A task that ended now.
    pub fn now(task: &'static str, outcome: &'static str) -> LastRun {
        LastRun {
            task,
            outcome,
            finished_at_ms: now_ms(),
        }
    }
}

impl IssueStore {
    /// Switches a monitor off or on for every process sharing the store.
    pub async fn set_enabled(&self, monitor: &str, enabled: bool) -> Result<()> {
        sqlx::query(
            "INSERT INTO sentinela_monitor_state (monitor, enabled, changed_at)
             VALUES ($1, $2, $3)
             ON CONFLICT (monitor) DO UPDATE SET enabled = $2, changed_at = $3",
        )
        .bind(monitor)
        .bind(i64::from(enabled))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records each monitor's last run, in one transaction; a run older than the one stored
    /// (another executor's) is not written over it.
    pub async fn record_runs(&self, runs: &[(String, LastRun)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (monitor, run) in runs {
            sqlx::query(
                "INSERT INTO sentinela_monitor_runs (monitor, task, outcome, finished_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (monitor) DO UPDATE SET task = $2, outcome = $3, finished_at = $4
                 WHERE sentinela_monitor_runs.finished_at <= $4",
            )
            .bind(monitor)
            .bind(run.task)
            .bind(run.outcome)
            .bind(run.finished_at_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Each monitor's last run as recorded: task, outcome and when.
    pub async fn last_runs(&self) -> Result<HashMap<String, (String, String, i64)>> {
        let rows =
            sqlx::query("SELECT monitor, task, outcome, finished_at FROM sentinela_monitor_runs")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<String, _>(0)?,
                    (
                        row.try_get::<String, _>(1)?,
                        row.try_get::<String, _>(2)?,
                        row.try_get::<i64, _>(3)?,
                    ),
                ))
            })
            .collect()
    }

    /// The monitors switched off by `monitor_disable`.
    pub async fn disabled_monitors(&self) -> Result<HashSet<String>> {
        let rows = sqlx::query("SELECT monitor FROM sentinela_monitor_state WHERE enabled = 0")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| row.try_get::<String, _>(0).map_err(Into::into))
            .collect()
    }

    /// Records each monitor's call health as it changed, in one transaction.
    pub async fn record_calls(&self, calls: &[(String, CallsRecord)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (monitor, record) in calls {
            sqlx::query(
                "INSERT INTO sentinela_monitor_calls
                     (monitor, last_outcomes, failed_in_a_row, last_error, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (monitor) DO UPDATE SET last_outcomes = $2, failed_in_a_row = $3,
                     last_error = $4, updated_at = $5",
            )
            .bind(monitor)
            .bind(&record.last)
            .bind(i64::from(record.failed_in_a_row))
            .bind(record.last_error.clone())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Each monitor's call health as recorded.
    pub async fn monitor_calls(&self) -> Result<HashMap<String, CallsRecord>> {
        let rows = sqlx::query(
            "SELECT monitor, last_outcomes, failed_in_a_row, last_error FROM sentinela_monitor_calls",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<String, _>(0)?,
                    CallsRecord {
                        last: row.try_get(1)?,
                        failed_in_a_row: u32::try_from(row.try_get::<i64, _>(2)?)
                            .unwrap_or(u32::MAX),
                        last_error: row.try_get(3)?,
                    },
                ))
            })
            .collect()
    }
}
