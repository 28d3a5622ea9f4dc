//! The commands on the issue store: `monitors` (list, disable, enable, refresh) and `issues`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::app::App;
use crate::config::Config;
use crate::guest_text::shortened;
use crate::issues::{EventQueue, IssueStore, Status};
use crate::message::Task;
use crate::queue::ApplicationQueue;
use crate::runtime::{Role, Runtime, RuntimeOptions, ScheduledMonitor};

use super::{IssueStatus, MonitorAction};

/// The config's issue store, sending events to `store.events_queue` when one is set.
pub(super) async fn open_store(host: &App) -> Result<IssueStore> {
    let config = &host.config;
    let events = match &config.store.events_queue {
        Some(queue) => {
            let Some(queues) = &host.queues else {
                bail!(
                    "{}: store.events_queue: sending issue events to a queue needs the 'aws' host \
                     plugin; set SENTINELA_PLUGINS=aws",
                    config.path.display()
                );
            };
            Some(EventQueue {
                queues: queues.clone(),
                queue: queue.clone(),
            })
        }
        None => None,
    };
    let store = IssueStore::open(&config.store, events)
        .await
        .with_context(|| config.path.display().to_string())?;
    tracing::info!(store = store.location(), "issue store open");
    Ok(store)
}

/// `sentinela monitors CONFIG [disable|enable NAME]`. With a shared application queue the
/// switch is a `monitor_disable`/`monitor_enable` request, which an executor applies (and
/// logs) as if Sentinela's controller had sent it; otherwise it is written to the store.
pub(super) async fn monitors(
    config_path: &Path,
    action: Option<MonitorAction>,
    monitor: Option<&str>,
) -> Result<ExitCode> {
    let config = Config::load(config_path)?;
    let store = IssueStore::open(&config.store, None)
        .await
        .with_context(|| config.path.display().to_string())?;
    let Some(action) = action else {
        let disabled = store.disabled_monitors().await?;
        let last_runs = store.last_runs().await?;
        let calls = store.monitor_calls().await?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        println!(
            "{:<24} {:>8}  {:<8}  {:<20}  {:<20}  {:<24}  CALLS",
            "MONITOR", "ID", "STATE", "SEARCH_CRON", "UPDATE_CRON", "LAST_RUN"
        );
        for m in &config.monitors {
            let cron = |c: &Option<crate::config::values::Schedule>| {
                c.as_ref()
                    .map_or("-".to_owned(), |c| c.expression().to_owned())
            };
            // Task and outcome come from the store, which another process may write: escaped.
            let last_run =
                last_runs
                    .get(m.name.as_str())
                    .map_or("never".to_owned(), |(task, outcome, at)| {
                        format!(
                            "{} {} {} ago",
                            shortened(task, 16),
                            shortened(outcome, 16),
                            age(now_ms.saturating_sub(*at))
                        )
                    });
            // Each export's last outcome; failing after FAILING_AFTER failed calls in a row.
            let record = calls.get(m.name.as_str());
            let calls_shown = record.map_or("-".to_owned(), |r| {
                let last = shortened(&r.last, 80);
                match r.failed_in_a_row {
                    0 => last,
                    n if n >= crate::telemetry::calls::FAILING_AFTER => {
                        format!("FAILING ({n} failed in a row): {last}")
                    }
                    n => format!("{n} failed in a row: {last}"),
                }
            });
            println!(
                "{:<24} {:>8}  {:<8}  {:<20}  {:<20}  {last_run:<24}  {calls_shown}",
                m.name.as_str(),
                m.id.map_or("-".to_owned(), |id| id.to_string()),
                if disabled.contains(m.name.as_str()) {
                    "disabled"
                } else {
                    "enabled"
                },
                cron(&m.search_cron),
                cron(&m.update_cron)
            );
            if let Some(error) = record
                .filter(|r| r.failed_in_a_row > 0)
                .and_then(|r| r.last_error.as_deref())
            {
                println!("    last error: {}", shortened(error, 300));
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let Some(wanted) = monitor else {
        let verb = match action {
            MonitorAction::Disable => "disable",
            MonitorAction::Enable => "enable",
            MonitorAction::Refresh => "refresh",
        };
        bail!("name the monitor to {verb}");
    };
    let Some(target) = config
        .monitors
        .iter()
        .find(|m| m.name.as_str() == wanted || m.id.is_some_and(|id| id.to_string() == wanted))
    else {
        bail!(
            "{}: no monitor named '{}' or with that id",
            config.path.display(),
            crate::guest_text::shortened(wanted, 64)
        );
    };
    let enabled = action == MonitorAction::Enable;
    let shared = config.application_queue.kind == crate::queue::QueueKind::Sqs;
    if action == MonitorAction::Refresh && !shared {
        if store
            .disabled_monitors()
            .await?
            .contains(target.name.as_str())
        {
            bail!("{} is disabled; enable it first", target.name);
        }
        return refresh_here(config_path, target.name.as_str()).await;
    }
    if shared {
        let queue = ApplicationQueue::from_config(&config.application_queue)
            .await
            .with_context(|| format!("{}: application_queue", config.path.display()))?;
        let action = match action {
            MonitorAction::Enable => "monitor_enable",
            MonitorAction::Disable => "monitor_disable",
            MonitorAction::Refresh => "monitor_refresh",
        };
        let body = serde_json::json!({
            "type": "request",
            "payload": { "action": action, "params": { "target_id": target.name.as_str() } },
        });
        queue.send(body.to_string(), None).await?;
        println!("sent {action} for {} to the application queue", target.name);
    } else {
        store.set_enabled(target.name.as_str(), enabled).await?;
        let state = if enabled { "enabled" } else { "disabled" };
        println!(
            "{} {state} (a running host notices within {}s)",
            target.name,
            crate::runtime::DISABLED_REFRESH.as_secs()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A duration in milliseconds as `42s`, `5m`, `3h` or `2d`.
fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `monitors CONFIG refresh NAME` without a shared queue: the monitor's search and update run
/// in this process, against the config's store, as an executor would run them.
async fn refresh_here(config: &Path, name: &str) -> Result<ExitCode> {
    let host = App::open(config)?;
    let monitor_config = host
        .config
        .monitor(name)
        .context("the monitor is no longer in the config")?;
    let plugin = host.load_monitor(monitor_config)?;
    let issues = open_store(&host).await?;
    let scheduled = ScheduledMonitor::new(Arc::new(plugin), Arc::new(monitor_config.clone()));
    let options = RuntimeOptions {
        role: Role::Executor,
        concurrency: 1,
        heartbeat: std::time::Duration::from_secs(60),
        shutdown_grace: std::time::Duration::ZERO,
        spread: crate::runtime::Spread(std::time::Duration::ZERO),
    };
    let queue = ApplicationQueue::Internal(crate::queue::InternalQueue::new());
    // The monitor in the runtime's set, so the flush writes its calls too.
    let runtime = Runtime::new(vec![scheduled], queue, issues, options);
    let monitor = runtime
        .monitor(monitor_config.name.as_str())
        .context("the monitor is not in the runtime it was given to")?;
    runtime
        .run_tasks(&monitor, &[Task::Search, Task::Update], None)
        .await;
    runtime.flush_last_runs().await;
    println!("{name} refreshed (search and update ran; see the log for their outcome)");
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn list_issues(
    config: &Path,
    monitor: Option<&str>,
    status: Option<IssueStatus>,
    json: bool,
    wide: bool,
) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let store = IssueStore::open(&config.store, None)
        .await
        .with_context(|| config.path.display().to_string())?;
    let status = status.map(|s| match s {
        IssueStatus::Active => Status::Active,
        IssueStatus::Solved => Status::Solved,
        IssueStatus::Dropped => Status::Dropped,
    });
    let issues = store.list(monitor, status).await?;
    if json {
        // The same JSON, with no character a terminal would act on or hide raw.
        let text = serde_json::to_string_pretty(&issues)?;
        println!("{}", crate::guest_text::json_for_terminal(&text));
        return Ok(ExitCode::SUCCESS);
    }
    if issues.is_empty() {
        println!("no issues in {}", store.location());
        return Ok(ExitCode::SUCCESS);
    }
    let time = |t: std::time::SystemTime| {
        chrono::DateTime::<chrono::Utc>::from(t)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    let rows: Vec<[String; 8]> = issues
        .iter()
        .map(|i| {
            // Ids and data are the monitors' words: escaped for the terminal (bidi controls,
            // line separators), as everywhere else.
            let mut data = crate::guest_text::json_for_terminal(&i.data.to_string()).into_owned();
            if !wide && data.len() > 60 {
                let cut = (0..=57)
                    .rev()
                    .find(|n| data.is_char_boundary(*n))
                    .unwrap_or(0);
                data.truncate(cut);
                data.push_str("...");
            }
            [
                i.monitor.clone(),
                i.key.to_string(),
                crate::guest_text::escape(&i.id).into_owned(),
                i.status.as_str().to_owned(),
                time(i.created_at),
                time(i.updated_at),
                i.solved_at.map(time).unwrap_or_default(),
                data,
            ]
        })
        .collect();
    let header = [
        "MONITOR",
        "KEY",
        "ISSUE",
        "STATUS",
        "FIRST SEEN (UTC)",
        "LAST CHANGED (UTC)",
        "CLOSED (UTC)",
        "DATA",
    ];
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    Ok(ExitCode::SUCCESS)
}
