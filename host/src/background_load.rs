//! A start that does not wait on compiles. `run` starts with the monitors whose plugin the
//! compile cache holds (a load is a map, a few milliseconds); the plugins it lacks are
//! compiled here, in the background, and each monitor joins the running set as soon as its
//! plugin is ready. Monitors already running keep their schedule meanwhile: the scheduler and
//! the executor never wait on a compile.
//!
//! Compiles run on blocking threads, at most one per core at a time (the `compile:`-limited
//! child process), the plugin of the monitor that is due soonest first. Once every first
//! load is done, the plugins that started on the baseline tier are tiered up
//! ([`crate::tier_up`]): a monitor's first call comes before anyone's optimized code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use tokio::task::JoinSet;

use crate::app::App;
use crate::config::MonitorConfig;
use crate::monitor::MonitorPlugin;
use crate::runtime::{Runtime, ScheduledMonitor};

/// Loads `pending` in the background and adds each monitor to `runtime` as its plugin is
/// ready. Returns at once. A config reload before a monitor is added wins: the reload loads
/// the monitors it runs itself, and what was loaded here for the old set is dropped.
pub fn spawn(app: Arc<App>, runtime: Arc<Runtime>, pending: Vec<MonitorConfig>) {
    if pending.is_empty() {
        return;
    }
    let since = runtime.replacements();
    crate::telemetry::set_loading(pending.iter().map(|m| m.name.as_str().to_owned()).collect());
    tracing::info!(
        monitors = pending.len(),
        "compiling plugins the compile cache lacks in the background; their monitors start \
         when ready"
    );
    let now = chrono::Utc::now();
    // One load per plugin file, however many monitors run it.
    let mut by_file: BTreeMap<PathBuf, Vec<MonitorConfig>> = BTreeMap::new();
    for monitor in pending {
        let file = monitor
            .plugin
            .file()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        by_file.entry(file).or_default().push(monitor);
    }
    // The soonest-due monitor's plugin first; monitors that run only on request last.
    let mut groups: Vec<(Option<chrono::DateTime<chrono::Utc>>, Vec<MonitorConfig>)> = by_file
        .into_values()
        .map(|group| {
            let due = group
                .iter()
                .flat_map(|m| [&m.search_cron, &m.update_cron])
                .filter_map(|cron| cron.as_ref()?.next_after(now))
                .min();
            (due, group)
        })
        .collect();
    groups.sort_by_key(|(due, _)| (due.is_none(), *due));
    tokio::spawn(async move {
        let mut loads = JoinSet::new();
        for (_, group) in groups {
            let Ok(permit) = app.compile_slots.clone().acquire_owned().await else {
                return;
            };
            let (app, runtime) = (app.clone(), runtime.clone());
            loads.spawn(async move {
                let _permit = permit;
                load(app, runtime, group, since).await
            });
        }
        let mut added = Vec::new();
        while let Some(loaded) = loads.join_next().await {
            added.extend(loaded.unwrap_or_default());
        }
        crate::tier_up::spawn(app, added);
    });
}

/// Loads one plugin file's monitors and adds those that loaded to the running set. Returns
/// the monitors added.
async fn load(
    app: Arc<App>,
    runtime: Arc<Runtime>,
    group: Vec<MonitorConfig>,
    since: u64,
) -> Vec<Arc<ScheduledMonitor>> {
    let names: Vec<String> = group.iter().map(|m| m.name.as_str().to_owned()).collect();
    let loaded = {
        let (app, runtime) = (app.clone(), runtime.clone());
        tokio::task::spawn_blocking(move || {
            let monitors: Vec<&MonitorConfig> = group.iter().collect();
            let loaded = app.load_some(&monitors);
            // A reload meanwhile reported (and runs) its own monitors.
            if runtime.replacements() != since {
                return Vec::new();
            }
            loaded
                .into_iter()
                .filter_map(|(config, loaded)| admit(&app, config, loaded))
                .map(Arc::new)
                .collect::<Vec<_>>()
        })
        .await
    };
    for name in &names {
        crate::telemetry::loaded(name);
    }
    let monitors = match loaded {
        Ok(monitors) => monitors,
        Err(e) => {
            tracing::error!(monitors = names.join(", "), "loading plugins failed: {e}");
            return Vec::new();
        }
    };
    if monitors.is_empty() {
        return Vec::new();
    }
    if !runtime.add_monitors(monitors.clone(), since) {
        tracing::info!(
            monitors = names.join(", "),
            "plugin compiled after a config reload replaced the monitors; not added"
        );
        return Vec::new();
    }
    for monitor in &monitors {
        tracing::info!(
            monitor = monitor.name(),
            tier = monitor.plugin().file().tier.name(),
            "monitor started: its plugin is compiled"
        );
    }
    monitors
}

/// A loaded monitor made ready to schedule, its plugin's warnings logged; or, if it could not
/// be loaded, the error logged and counted (`/readyz` lists it) and `None`.
pub fn admit(
    app: &App,
    config: &MonitorConfig,
    loaded: Result<MonitorPlugin>,
) -> Option<ScheduledMonitor> {
    let name = config.name.as_str();
    match loaded {
        Ok(plugin) => {
            for warning in plugin.file().warnings(&app.host_plugins) {
                tracing::warn!(monitor = name, "{warning}");
            }
            if let Some(declaration) = &plugin.file().declaration {
                for warning in declaration.grant_warnings(&config.grants, &config.secrets) {
                    tracing::warn!(monitor = name, "{warning}");
                }
            }
            Some(ScheduledMonitor::new(
                Arc::new(plugin),
                Arc::new(config.clone()),
            ))
        }
        Err(e) => {
            crate::telemetry::METRICS
                .plugin_load_errors
                .get_or_create(&vec![("monitor", name.to_owned())])
                .inc();
            crate::telemetry::add_not_loaded(name);
            tracing::error!(
                monitor = name,
                "monitor not run: {e:#} ({})",
                app.config.path.display()
            );
            None
        }
    }
}
