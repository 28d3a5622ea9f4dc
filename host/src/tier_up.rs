//! Tier-up: a plugin the compile cache lacked starts on the baseline tier (Winch, compiled in
//! a second or two) and is compiled again with Cranelift in the background; the optimized
//! version is swapped in for the calls that start from then on, and the compile cache keeps
//! it, so the next start loads it directly.
//!
//! Compiles run on blocking threads, never on the executor's workers, at most one per core
//! at a time (each in the `compile:`-limited child process, at a lower CPU priority), the
//! monitor that is due soonest first. A monitor whose plugin changed meanwhile (a reload, a
//! config change) keeps its newer version: only the very plugin that was on the baseline
//! tier is replaced.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::app::App;
use crate::config::MonitorConfig;
use crate::engine::Tier;
use crate::monitor::MonitorPlugin;
use crate::runtime::ScheduledMonitor;

/// A monitor on the baseline tier: the plugin it runs now and the config it was loaded for.
struct OnBaseline {
    monitor: Arc<ScheduledMonitor>,
    plugin: Arc<MonitorPlugin>,
    config: Arc<MonitorConfig>,
}

/// Compiles, in the background, the optimized code of every plugin among `monitors` that
/// runs on the baseline tier, and swaps it in. Returns at once.
pub fn spawn(app: Arc<App>, monitors: Vec<Arc<ScheduledMonitor>>) {
    let now = chrono::Utc::now();
    // One compile per plugin file (and pin), however many monitors run it.
    let mut by_file: BTreeMap<(PathBuf, String), Vec<OnBaseline>> = BTreeMap::new();
    for monitor in monitors {
        let plugin = monitor.plugin();
        if plugin.file().tier != Tier::Baseline {
            continue;
        }
        let key = (plugin.file().path.clone(), plugin.file().sha256.clone());
        let config = monitor.config();
        by_file.entry(key).or_default().push(OnBaseline {
            monitor,
            plugin,
            config,
        });
    }
    if by_file.is_empty() {
        return;
    }
    // The soonest-due monitor's plugin first; monitors that run only on request last.
    let mut groups: Vec<(Option<chrono::DateTime<chrono::Utc>>, Vec<OnBaseline>)> = by_file
        .into_values()
        .map(|group| {
            let due = group
                .iter()
                .flat_map(|m| {
                    [
                        m.monitor.next_cron_time(true, now),
                        m.monitor.next_cron_time(false, now),
                    ]
                })
                .flatten()
                .min();
            (due, group)
        })
        .collect();
    groups.sort_by_key(|(due, _)| (due.is_none(), *due));
    tokio::spawn(async move {
        for (_, group) in groups {
            let Ok(permit) = app.compile_slots.clone().acquire_owned().await else {
                return;
            };
            let app = app.clone();
            tokio::spawn(async move {
                let _permit = permit;
                tier_up(app, group).await;
            });
        }
    });
}

/// Compiles one plugin file's optimized code and swaps it in for each monitor still running
/// the baseline version.
async fn tier_up(app: Arc<App>, mut group: Vec<OnBaseline>) {
    // A reload may have replaced the plugin while this waited for a compile slot.
    group.retain(|m| Arc::ptr_eq(&m.monitor.plugin(), &m.plugin));
    if group.is_empty() {
        return;
    }
    let started = Instant::now();
    let configs: Vec<Arc<MonitorConfig>> = group.iter().map(|m| m.config.clone()).collect();
    let loaded = tokio::task::spawn_blocking(move || {
        let configs: Vec<&MonitorConfig> = configs.iter().map(|c| c.as_ref()).collect();
        app.load_optimized(&configs)
            .into_iter()
            .map(|(_, loaded)| loaded)
            .collect::<Vec<_>>()
    })
    .await;
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            tracing::error!("tier-up failed: {e}");
            return;
        }
    };
    for (on_baseline, loaded) in group.into_iter().zip(loaded) {
        let name = on_baseline.monitor.name();
        match loaded {
            Ok(plugin) if plugin.file().tier == Tier::Optimized => {
                let sha256 = plugin.file().sha256.clone();
                if on_baseline.monitor.tier_up(
                    &on_baseline.plugin,
                    Arc::new(plugin),
                    &on_baseline.config,
                ) {
                    tracing::info!(
                        monitor = name,
                        sha256 = sha256.as_str(),
                        tier = Tier::Optimized.name(),
                        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                        "plugin tiered up: optimized code from now on"
                    );
                }
            }
            Ok(_) => tracing::warn!(
                monitor = name,
                "tier-up compiled no optimized code; the monitor stays on the baseline tier"
            ),
            Err(e) => tracing::warn!(
                monitor = name,
                "tier-up failed; the monitor stays on the baseline tier: {e:#}"
            ),
        }
    }
}
